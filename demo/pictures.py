"""``python -m demo pictures``: what the people who receive the files see, as pictures in ``docs/pictures/``.

From the outbox of the last demo night (``make pictures`` runs ``make demo`` first), each file is
printed the way its reader would print it, and the first pages become PNG images for the docs:

- the signal digests (HTML) of the thuiszitter coordinator and of one municipality, printed to PDF by
  headless Chromium (A4 landscape, as the page's own print style says);
- the PO → VO handover workbook of the school with the most pupils and the VO → MBO workbook of the
  institution with the most leavers, printed to PDF by LibreOffice (A4 landscape, as the workbook's
  own print setup says);
- each PDF's first pages as PNG by ``pdftoppm``.

A missing Chromium, LibreOffice or pdftoppm skips the pictures that need it, with a message; the others
are still made. The pictures show the demo's synthetic pupils only.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from settings.paths import PROJECT_ROOT, var_layout

PICTURES = PROJECT_ROOT / "docs" / "pictures"
CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-pdf-header-footer"]
RESOLUTION = 90  # dots per inch of the PNG pages: an A4 page is about 1050 pixels wide
TIMEOUT_S = 120


def _tool(*names: str) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


def _pages_to_png(pdf: Path, target: Path, pages: int) -> list[Path]:
    """The first ``pages`` pages of ``pdf`` as ``target-1.png``, ``target-2.png``, ... (one page: ``target.png``)."""
    pdftoppm = _tool("pdftoppm")
    if pdftoppm is None:
        raise FileNotFoundError("pdftoppm (poppler-utils) is not installed")
    with tempfile.TemporaryDirectory(prefix="swv-pictures-") as work:
        subprocess.run([pdftoppm, "-png", "-r", str(RESOLUTION), "-f", "1", "-l", str(pages), str(pdf),
                        str(Path(work) / "page")], check=True, timeout=TIMEOUT_S)
        made = sorted(Path(work).glob("page*.png"))
        names = [target.with_suffix(".png")] if len(made) == 1 else [
            target.with_name(f"{target.name}-{number}.png") for number in range(1, len(made) + 1)]
        for page, name in zip(made, names, strict=True):
            shutil.move(page, name)
    return names


def html_to_pdf(page: Path, pdf: Path) -> Path:
    """``page`` printed by headless Chromium, as the page's ``@page`` style lays it out."""
    chromium = _tool(*CHROMIUM)
    if chromium is None:
        raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="swv-chromium-") as profile:
        subprocess.run([chromium, *CHROMIUM_ARGS, f"--user-data-dir={profile}", f"--print-to-pdf={pdf}",
                        page.resolve().as_uri()], check=True, timeout=TIMEOUT_S, capture_output=True)
    return pdf


def workbook_to_pdf(workbook: Path, folder: Path) -> Path:
    """``workbook`` printed by LibreOffice, as its own print setup says (a private profile, so a LibreOffice
    that is open elsewhere does not get in the way)."""
    soffice = _tool("soffice", "libreoffice")
    if soffice is None:
        raise FileNotFoundError("LibreOffice is not installed (Debian: apt-get install libreoffice-calc)")
    with tempfile.TemporaryDirectory(prefix="swv-soffice-") as profile:
        subprocess.run([soffice, f"-env:UserInstallation={Path(profile).as_uri()}", "--headless", "--convert-to",
                        "pdf", "--outdir", str(folder), str(workbook)], check=True, timeout=TIMEOUT_S,
                       capture_output=True)
    pdf = folder / workbook.with_suffix(".pdf").name
    if not pdf.exists():
        raise RuntimeError(f"LibreOffice wrote no PDF for {workbook}")
    return pdf


def _largest(files: list[Path]) -> Path | None:
    """The file with the most rows (its CSV's line count), for a picture with a full page."""
    candidates = [path for path in files if path.exists()]
    if not candidates:
        return None
    return max(candidates, key=lambda path: (path.with_suffix(".csv").read_bytes().count(b"\n"), path.as_posix()))


def _latest(folder: Path) -> Path | None:
    dated = sorted(p for p in folder.iterdir() if p.is_dir() and p.name[:1].isdigit()) if folder.is_dir() else []
    return dated[-1] if dated else None


def render_pictures(outbox: Path, target: Path = PICTURES, say: Callable[[str], None] = print) -> list[Path]:
    """Every picture of the docs from ``outbox``; returns the PNG files written."""
    target.mkdir(parents=True, exist_ok=True)
    night = _latest(outbox / "signalen")
    po_year = _latest(outbox / "overdracht" / "po-vo")
    mbo_year = _latest(outbox / "overdracht" / "vo-mbo")
    if night is None or po_year is None:
        raise FileNotFoundError(f"no demo night in {outbox}: run `make demo` first")
    def printed(source: Path, work: Path) -> Path:
        return html_to_pdf(source, work / "page.pdf")

    jobs: list[tuple[str, Path | None, Callable[[Path, Path], Path], int]] = [
        ("signalen-coordinator", night / "signalen_thuiszittercoordinator.html", printed, 1),
        ("signalen-gemeente", _largest(sorted((night / "gemeenten").glob("*/signalen_*.html"))), printed, 1),
        ("overdracht-po-vo", _largest(sorted(po_year.glob("*/overdracht.xlsx"))), workbook_to_pdf, 2),
        ("overdracht-vo-mbo", _largest(sorted(mbo_year.glob("*/overdracht.xlsx"))) if mbo_year else None,
         workbook_to_pdf, 1),
    ]
    written = []
    for name, source, to_pdf, pages in jobs:
        if source is None:
            say(f"{name}: nothing to render in {outbox}")
            continue
        try:
            with tempfile.TemporaryDirectory(prefix="swv-pictures-") as work:
                written += _pages_to_png(to_pdf(source, Path(work)), target / name, pages)
        except FileNotFoundError as missing:
            say(f"{name}: skipped, {missing}")
            continue
        say(f"{name}: {source.relative_to(outbox)} -> {', '.join(p.name for p in written[-pages:])}")
    return written


def main() -> int:
    render_pictures(var_layout().outbox)
    return 0
