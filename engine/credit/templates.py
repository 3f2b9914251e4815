"""Built-in wording of the messages about a customer itself (holds, releases, early warnings).

The same texts ship in rules/templates/ for finance to edit or translate; these are the fallback when a
rules folder has none. They see `customer`, `stage`, `policy` (for a warning: "warning:<rule>"), `as_of`
and `company`; `invoice` is null and `invoices` empty.
"""

from __future__ import annotations

BUILTIN_TEMPLATES: dict[str, str] = {
    "credit_hold.txt": """Subject: Credit hold: {{ customer.name }} ({{ customer.id }})
{{ customer.name }} ({{ customer.id }}) is on credit hold as of {{ as_of }}: no new orders should ship.

`dunning credit check {{ customer.id }} --amount X` gives the reasons; the customer's history has the details.

{{ company.name }}
""",
    "credit_release.txt": """Subject: Credit hold released: {{ customer.name }} ({{ customer.id }})
The credit hold on {{ customer.name }} ({{ customer.id }}) was released as of {{ as_of }}: orders may ship again
within the credit limit.

{{ company.name }}
""",
    "credit_warning.txt": """Subject: Early warning for {{ customer.name }} ({{ customer.id }}): {{ policy | replace("warning:", "") }}
The early warning "{{ policy | replace("warning:", "") }}" was raised for {{ customer.name }} ({{ customer.id }}) as of {{ as_of }}.

`dunning warnings --open` lists it; acknowledge it with `dunning warnings ack ID --note TEXT` once someone is on it.

{{ company.name }}
""",
}
