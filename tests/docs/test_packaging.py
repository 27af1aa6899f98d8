"""pyproject.toml claims the Python versions the suite runs on, and carries what rnnlab imports."""
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_running_python_is_the_one_claimed():
    low = tuple(int(n) for n in re.fullmatch(r">=(\d+)\.(\d+)", PROJECT["requires-python"]).groups())
    here = sys.version_info[:2]
    assert here >= low, f"requires-python {PROJECT['requires-python']} excludes the Python testing it"
    claimed = {c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"]
               if re.fullmatch(r"Programming Language :: Python :: \d+\.\d+", c)}
    assert f"{here[0]}.{here[1]}" in claimed, f"the classifiers claim {claimed}, not {here}"
    oldest = min(tuple(int(n) for n in v.split(".")) for v in claimed)
    assert oldest == low, "requires-python and the classifiers disagree"


def test_config_files_are_read_on_every_claimed_python():
    # rnnlab.api reads --config with tomllib (3.11+) or tomli before it
    assert any(d.replace(" ", "").startswith("tomli>=") and "python_version<'3.11'" in d.replace(" ", "")
               for d in PROJECT["dependencies"])
