"""Process-wide settings, from flags or ``DVP_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .lease import is_url
from .runtime import DEFAULT_RUNTIME, RUNTIMES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DVP_", extra="ignore")

    run_dir: Path = Path(".dvp")
    journal: Path | str | None = None  # a file (SQLite) or a postgresql:// URL (dvp.journal)
    runtime: str = DEFAULT_RUNTIME
    reports_dir: Path = Path("reports")

    @field_validator("run_dir", "journal", "reports_dir", mode="before")
    @classmethod
    def _absolute(cls, value: Path | str | None) -> Path | str | None:
        """Resolved once against the working directory the command started in (children get other ones);
        a journal URL is kept as given."""
        if value is None or is_url(str(value)):
            return value if value is None else str(value)
        return Path(value).expanduser().absolute()

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        if value not in RUNTIMES:
            raise ValueError(f"unknown runtime {value!r} (known: {', '.join(sorted(RUNTIMES))})")
        return value

    @property
    def journal_path(self) -> Path | str:
        return self.journal or self.run_dir / "journal.sqlite"
