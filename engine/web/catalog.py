"""The pages' texts beyond plain English: readable English names for the identifiers shown (`no_answer` →
"No answer") and the 简体中文 texts, keyed by their English text (see engine/web/i18n.py)."""

from __future__ import annotations

#: Identifiers (stages, event kinds, outcomes, states) as English words.
EN: dict[str, str] = {
    "no_answer": "No answer", "paid": "Paid", "wrong_contact": "Wrong contact", "promised": "Promised",
    "disputed": "Disputed", "written_off": "Written off", "write_off": "Write-off", "write-off": "Write-off",
    "policy_changed": "Policy changed", "dispute_resolved": "Dispute resolved", "promise_kept": "Promise kept",
    "promise_broken": "Promise broken", "installment_kept": "Installment kept",
    "installment_missed": "Installment missed", "plan_completed": "Plan completed",
    "approval_requested": "Approval requested", "task_outcome": "Task outcome", "payment_claimed": "Customer says paid",
    "import": "Imported", "update": "Updated", "transition": "Transition", "notification": "Notification",
    "payment": "Payment", "dispute": "Dispute", "promise": "Promise", "plan": "Payment plan", "note": "Note",
    "override": "Manual move", "approval": "Approval", "approve": "Approved", "resolve": "Resolved",
    "move": "Moved", "retry": "Retry queued", "policy-diff": "Policy comparison", "simulation": "Simulation", "installment": "Installment", "claim": "claim",
}

ZH_CN: dict[str, str] = {
    # navigation and roles
    "Dashboard": "仪表板", "Worklist": "工作清单", "Approvals": "审批", "Outbox": "发件箱", "Audit": "审计",
    "Policies": "策略", "Sign out": "退出", "viewer": "查看者", "collector": "催收员", "manager": "经理",
    "admin": "管理员", "Back": "返回", "Not done": "未完成", "Recorded": "已记录",
    # stages, states, kinds
    "current": "未到期", "courtesy": "到期提醒", "reminder": "提醒", "phone": "电话", "letter": "催款函",
    "visit": "上门拜访", "legal": "法律程序", "final": "最终通知", "disputed": "有争议", "promised": "已承诺",
    "paid": "已付款", "written_off": "已核销", "no_answer": "无人接听", "wrong_contact": "联系方式错误",
    "Promised": "已承诺付款", "Disputed": "有争议", "import": "导入", "update": "更新", "transition": "阶段变更",
    "notification": "通知", "payment": "付款", "policy_changed": "策略变更", "dispute": "争议",
    "dispute_resolved": "争议已解决", "promise": "付款承诺", "promise_kept": "承诺已兑现",
    "promise_broken": "承诺未兑现", "plan": "分期计划", "installment": "分期", "installment_kept": "分期已付",
    "installment_missed": "分期逾期", "plan_completed": "分期完成", "note": "备注", "write_off": "核销",
    "write-off": "核销", "override": "手动调整", "approval_requested": "请求审批", "approval": "审批通过",
    "approve": "已审批", "resolve": "已解决", "move": "已调整", "retry": "已重新排队", "task_outcome": "任务结果",
    "payment_claimed": "客户称已付款", "claim": "付款声明", "failed": "失败", "held": "暂缓", "retrying": "重试中",
    "pending": "待发送", "sending": "发送中", "sent": "已发送", "cancelled": "已取消", "queued": "已排队",
    "error": "错误", "warning": "警告", "reason": "原因", "text": "内容", "outcome": "结果", "stage": "阶段",
    "to": "至", "channel": "渠道", "status": "状态",
    # worklist
    "Broken promises and promises due first, then the largest amount × days overdue.":
        "先列出未兑现和到期的付款承诺，再按金额 × 逾期天数从大到小排列。",
    "{n} invoice": "{n} 张发票", "{n} invoices": "{n} 张发票", "Nothing to chase right now.": "目前没有需要催收的发票。",
    "Invoice": "发票", "Customer": "客户", "Stage": "阶段", "Open amount": "未付金额", "Days overdue": "逾期天数",
    "Outcome": "结果", "promise broken": "承诺未兑现", "promise due": "承诺到期", "Amount": "金额", "By": "截止日期",
    "Record promise": "记录承诺", "Reason": "原因", "Record dispute": "记录争议",
    # invoice
    "Owner": "负责人", "Issued": "开票日期", "Due": "到期日", "{n} day overdue": "逾期 {n} 天",
    "{n} days overdue": "逾期 {n} 天", "Policy": "策略", "Waiting for approval of": "等待审批的阶段", "by": "由",
    "Why it is where it is": "为何处于此阶段", "Actions": "操作", "Note": "备注", "Text": "内容", "Add note": "添加备注",
    "Promise": "付款承诺", "Payment plan": "分期计划", "Installments": "分期", "Record plan": "记录分期计划",
    "Dispute": "争议", "Resolve dispute": "解决争议", "Resolve": "解决", "Approve": "批准", "Move": "调整阶段",
    "To": "至", "Write off": "核销", "Timeline": "时间线", "rule": "规则", "policy": "策略", "skipped": "跳过",
    "repeat": "重复", "{n} attempt": "{n} 次尝试", "{n} attempts": "{n} 次尝试", "reference": "参考号",
    "paused until": "暂停至",
    # customer
    "Email": "电子邮件", "Phone": "电话", "Address": "地址", "Credit grade": "信用等级", "Segment": "客户类别",
    "Language": "语言", "Tags": "标签", "Totals": "合计", "Nothing open.": "没有未结发票。", "open": "未付",
    "overdue": "逾期", "Invoices": "发票", "History": "历史",
    # approvals
    "Invoices waiting for a stage that needs approval before it is entered.": "等待进入需审批阶段的发票。",
    "Nothing waits for approval.": "没有待审批的发票。", "Waiting for": "等待", "Requested": "请求时间",
    # outbox
    "all": "全部", "No failed, held or retrying notifications.": "没有失败、暂缓或重试中的通知。", "State": "状态",
    "Channel": "渠道", "Recipient": "收件人", "Attempts": "尝试次数", "Next try": "下次尝试",
    "quiet hours or contact cap": "免打扰时段或联系次数上限", "Retry": "重试",
    # dashboard
    "Open and overdue": "未付与逾期",
    "The figures over the whole book are being computed; they appear here when ready.":
        "正在计算整个账簿的指标，完成后将显示在此处。", "No invoices in the book yet.": "账簿中还没有发票。", "Operations": "运行状况",
    "approvals waiting": "待审批", "never": "从未", "last sweep": "上次扫描", "{n} transition": "{n} 次阶段变更",
    "{n} transitions": "{n} 次阶段变更", "Collection KPIs": "回款指标", "DSO (days)": "应收账款周转天数（DSO）",
    "CEI": "回款效率指数（CEI）", "timeliness rate": "回款及时率", "collected": "已回款",
    "Receivables aging": "应收账款账龄", "Trends over the last 12 months": "近 12 个月趋势",
    "DSO (days), per month": "每月 DSO（天）", "CEI, per month": "每月 CEI",
    "Overdue share at month end": "月末逾期占比", "Collected per month": "每月回款",
    # audit
    "Event log verification": "事件日志校验", "The expected head must be 64 hexadecimal characters.":
        "预期的链头哈希必须是 64 位十六进制字符。", "Verify OK": "校验通过", "{n} event checked": "已校验 {n} 个事件",
    "{n} events checked": "已校验 {n} 个事件", "ending in the expected head": "链头与预期一致",
    "The log is broken": "日志已损坏", "event": "事件", "position": "位置", "Head hash": "链头哈希",
    "Keep the head hash elsewhere (a ticket, an email); checking against it later also catches events deleted from the end.":
        "请把链头哈希另行保存（工单或邮件）；日后据此校验，也能发现末尾被删除的事件。",
    "Expected head": "预期链头", "Verify": "校验", "Export": "导出", "Format": "格式", "From": "起始",
    "Kind": "类型", "Actor": "操作人", "Download": "下载",
    # policies
    "Check": "检查", "No problems found.": "未发现问题。", "File": "文件", "Line": "行", "Column": "列",
    "Severity": "级别", "Message": "说明", "Files": "文件", "No policy files.": "没有策略文件。", "Simulate": "模拟",
    "Policies folder": "策略文件夹", "Payments": "付款", "nobody pays": "无人付款", "historical rates": "按历史比例",
    "Start simulation": "开始模拟", "Compare two policy folders": "比较两个策略文件夹", "Old": "旧", "New": "新",
    "As of": "基准日", "Horizon (days)": "期限（天）", "Start comparison": "开始比较", "Versions": "版本",
    "First used": "首次使用", "No sweep has used a policy yet.": "尚无扫描使用过策略。",
    # customer view
    "Your account": "您的账户", "Link not valid": "链接无效",
    "This link is not valid: it was changed, has expired or is unknown. Please ask us for a new one.":
        "此链接无效：已被修改、已过期或无法识别。请联系我们获取新链接。",
    "Thank you. We have noted your payment and will check it; reminders pause meanwhile.":
        "谢谢！我们已记下您的付款并将核实，在此期间暂停催款提醒。",
    "Thank you. We have recorded your dispute and will be in touch; reminders stop meanwhile.":
        "谢谢！我们已记录您的异议并会与您联系，在此期间停止催款提醒。",
    "Nothing is open on your account. Thank you!": "您的账户没有未付款项。谢谢！", "you owe": "应付金额",
    "Status": "状态", "Result": "结果", "Period": "期间", "Stages entered": "进入的阶段", "Notifications": "通知",
    "Edited file": "修改的文件", "(none: the rules in force)": "（无：使用现行规则）", "Its new text": "新内容",
    "Compare an edited policy with the rules in force": "将修改后的策略与现行规则比较", "simulation": "模拟",
    "policy-diff": "策略比较", "queued": "排队中", "running": "运行中", "done": "完成",
    "under dispute": "异议处理中", "I have paid": "我已付款", "Your payment reference": "您的付款参考号",
    "Tell us": "告诉我们", "I dispute this": "我有异议", "What is wrong?": "哪里有问题？", "Send": "发送",
}
