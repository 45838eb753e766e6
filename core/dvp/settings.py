"""Process-wide settings, from flags or ``DVP_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DVP_", extra="ignore")

    run_dir: Path = Path(".dvp")
    journal: Path | None = None
    runtime: Literal["process", "docker"] = "process"
    reports_dir: Path = Path("reports")

    @property
    def journal_path(self) -> Path:
        return self.journal or self.run_dir / "journal.sqlite"
