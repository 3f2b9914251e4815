"""Inbound messages written by the tests: DSNs (RFC 3464 and non-standard), auto-replies, replies in English and
Chinese. Each builder returns RFC 822 bytes; `our_id` is the Message-ID of the notice being answered."""

from __future__ import annotations

from email.message import EmailMessage

from channels.email import message_id_for

DOMAIN = "dunning.example"


def our_id(key: str) -> str:
    return message_id_for(key, DOMAIN)


def reply(sender: str, subject: str, body: str, *, mid: str, in_reply_to: str | None = None, quoted: str = "") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "ar@us.example"
    message["Subject"] = subject
    message["Message-ID"] = mid
    message["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(body + (f"\n\nOn Mon, 30 Nov 2026, Accounts wrote:\n> {quoted}\n" if quoted else "\n"))
    return message.as_bytes()


def auto_reply(
    sender: str,
    *,
    mid: str,
    in_reply_to: str | None,
    body: str,
    header: bool = True,
    subject: str = "Automatic reply: Payment reminder",
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "ar@us.example"
    message["Subject"] = subject
    message["Message-ID"] = mid
    if header:
        message["Auto-Submitted"] = "auto-replied"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    message.set_content(body)
    return message.as_bytes()


def dsn(recipient: str, original_id: str, *, mid: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    """An RFC 3464 delivery status notification with the original's headers attached."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n"
        "To: ar@us.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {mid}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"\r\n'
        "\r\n"
        "--BOUNDARY\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"This is the mail system. Your message to <{recipient}> could not be delivered.\r\n"
        "--BOUNDARY\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown\r\n"
        "\r\n"
        "--BOUNDARY\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: ar@us.example\r\nTo: {recipient}\r\nSubject: Payment reminder\r\nMessage-ID: {original_id}\r\n"
        "--BOUNDARY--\r\n"
    ).encode("ascii")


def plain_bounce(recipient: str, original_id: str, *, mid: str, code: str = "550 5.7.1") -> bytes:
    """A non-standard bounce (qmail/Exchange style): text only, the original quoted in the body."""
    message = EmailMessage()
    message["From"] = "postmaster@mx.example"
    message["To"] = "ar@us.example"
    message["Subject"] = "failure notice"
    message["Message-ID"] = mid
    message.set_content(
        "Hi. This is the qmail-send program at mx.example.\nI'm afraid I wasn't able to deliver your message.\n\n"
        f"<{recipient}>:\nRemote host said: {code} Delivery not authorized, message refused\n\n"
        f"--- Below this line is a copy of the message.\n\nMessage-ID: {original_id}\nSubject: Payment reminder\n"
    )
    return message.as_bytes()
