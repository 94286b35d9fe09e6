"""The README and docs/ stay true: generated tables fresh, links whole, documented commands valid."""

import inspect
import pathlib
import re

from mia_tf import cli_options, doc_blocks
from mia_tf.cli import Cli

from conftest import ROOT

DOCUMENTS = [pathlib.Path(p) for p in doc_blocks.documents(str(ROOT))]


def test_generated_blocks_are_up_to_date():
    stale = [str(p.relative_to(ROOT)) for p in DOCUMENTS if doc_blocks.render(p.read_text(), str(ROOT)) != p.read_text()]
    assert not stale, f"run python scripts/render_docs.py: stale {stale}"
    assert all("<!-- generated:" in p.read_text() for p in (ROOT / "README.md", ROOT / "docs" / "results.md"))


def test_relative_links_point_at_files_that_exist():
    broken = []
    for page in DOCUMENTS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+://", target) and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken


def test_every_documented_command_uses_options_the_cli_has():
    verbs = cli_options.verbs(Cli())
    checked = 0
    for page in DOCUMENTS:
        text = page.read_text().replace("\\\n", " ")
        for verb, rest in re.findall(r"python -m mia_tf (\w+)([^`\n#]*)", text):
            if verb == "VERB":
                continue
            assert verb in verbs, f"{page.name}: unknown verb in `python -m mia_tf {verb}{rest}`"
            parameters = inspect.signature(verbs[verb]).parameters
            for option in re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", rest):
                name = option.replace("-", "_")
                known = name in parameters or (name.startswith("no") and name[2:] in parameters) or name == "help"
                assert known, f"{page.name}: `python -m mia_tf {verb}` has no option --{option}"
            checked += 1
    assert checked > 20


def test_the_readme_two_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("## Two commands", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0] == "pip install -r requirements.txt -e . && python -m mia_tf whitebox --layer relu2"
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == first_block[1] and "pip install -q -r requirements.txt -e ." in ci


def test_the_readme_api_example_runs_and_prints_what_it_says(capsys):
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## The Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {})
    table = capsys.readouterr().out
    printed = float(re.search(r"PSNR \(dB\)\s+([\d.]+)", table).group(1))
    claimed = float(re.search(r"# PSNR ([\d.]+) dB", code).group(1))
    assert abs(printed - claimed) < 0.05
