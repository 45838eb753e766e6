"""Process-wide settings, from flags or ``DVP_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .runtime import DEFAULT_RUNTIME, RUNTIMES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DVP_", extra="ignore")

    run_dir: Path = Path(".dvp")
    journal: Path | None = None
    runtime: str = DEFAULT_RUNTIME
    reports_dir: Path = Path("reports")

    @field_validator("run_dir", "journal", "reports_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """Resolved once against the working directory the command started in (children get other ones)."""
        return value.expanduser().absolute() if value is not None else None

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        if value not in RUNTIMES:
            raise ValueError(f"unknown runtime {value!r} (known: {', '.join(sorted(RUNTIMES))})")
        return value

    @property
    def journal_path(self) -> Path:
        return self.journal or self.run_dir / "journal.sqlite"
