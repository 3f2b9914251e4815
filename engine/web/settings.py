"""The `web:` block of the configuration: where customer links point and how long sessions and links live.

web:
  public_url: https://dunning.example.com   # customer links are built on it; off while unset
  session_idle_minutes: 30                   # a session unused this long ends
  session_max_hours: 12                      # and every session ends this long after its login
  link_days: 30                              # how long a customer link stays valid
  claim_pause_days: 7                        # "I have paid" on the customer page pauses escalation this long
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

SECRET_ENV = "DUNNING_WEB_SECRET"
LINK_SECRET_ENV = "DUNNING_LINK_SECRET"


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public_url: str | None = None
    session_idle_minutes: float = Field(30, gt=0)
    session_max_hours: float = Field(12, gt=0)
    link_days: float = Field(30, gt=0)
    #: A customer's "I have paid" (customer page) pauses escalation this many days (plus the policy's grace days).
    claim_pause_days: int = Field(7, ge=1, le=90)

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or any(c in value for c in "\r\n\t <>\"'"):
            raise ValueError(f"must be an absolute http(s) URL such as https://dunning.example.com, got {value!r}")
        return value.rstrip("/")
