"""Small helpers the page modules share."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from fastapi import Request

from engine.clock import local_day
from engine.web import services

if TYPE_CHECKING:
    from engine.app import Dunning


def app_of(request: Request) -> Dunning:
    return services.dunning(request)


def today(request: Request) -> date:
    dunning = app_of(request)
    return local_day(dunning.clock.now(), dunning.settings.zone)
