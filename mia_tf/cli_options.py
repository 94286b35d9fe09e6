"""Checks a command line against the verbs' signatures before fire sees it.

fire parses a command line lazily: an option it does not know is reported only after the verb
has run ("Could not consume arg: --stpes" after a whole 5,000-step attack and its outputs), a
bare word binds to whichever parameter is next, and `--full=false` reaches the verb as the true
string "false". Here every option is matched against the verb's own parameters first, so a
misspelt or missing option is one line and exit 2 before any work, and boolean options arrive as
booleans. Help is printed from the verbs' docstrings, whole, with the flags spelt as users type
them (hyphens).
"""

import difflib
import inspect
import re

from mia_tf.errors import UsageError

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def flag(name: str) -> str:
    """A parameter as a user types it: `data_dir` -> `--data-dir`."""
    return "--" + name.replace("_", "-")


def negated_flag(name: str) -> str:
    """A boolean parameter's off switch, as fire spells it: `full` -> `--nofull`."""
    return "--no" + name.replace("_", "-")


def verbs(cli) -> dict:
    """The public methods of the CLI object, by name."""
    return {name: getattr(cli, name) for name in dir(cli)
            if not name.startswith("_") and callable(getattr(cli, name))}


def _suggestion(word, choices):
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _boolean(verb, name, value):
    if isinstance(value, bool):
        return value
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise UsageError(f"{verb} {flag(name)} takes true or false (or {flag(name)} / {negated_flag(name)}), "
                     f"got {value!r}")


def check(cli, argv: list) -> tuple:
    """(verb, argv for fire) once `argv` names a verb and only options it has; else UsageError.

    Returns (None, None) when `argv` asks for help (printed by `help_text`)."""
    table = verbs(cli)
    if not argv or argv[0] in ("-h", "--help", "help"):
        return None, None
    verb, rest = argv[0], list(argv[1:])
    if verb not in table:
        raise UsageError(f"unknown verb {verb!r}{_suggestion(verb, list(table))}: use one of {', '.join(sorted(table))}")
    if "-h" in rest or "--help" in rest:
        return verb, None
    parameters = dict(inspect.signature(table[verb]).parameters)
    booleans = {name for name, p in parameters.items() if isinstance(p.default, bool)}
    given = {}
    while rest:
        token = rest.pop(0)
        if not token.startswith("--") or token == "--":
            raise UsageError(f"{verb} takes options only (--name value), got the bare word {token!r}")
        name, has_value, value = token[2:].partition("=")
        name = name.replace("-", "_")
        negated = not has_value and name.startswith("no") and name[2:].lstrip("_") in booleans
        if negated:
            name, value, has_value = name[2:].lstrip("_"), False, True
        if name not in parameters:
            known = [flag(p) for p in parameters]
            raise UsageError(f"{verb} has no option {flag(name)}{_suggestion(flag(name), known)}; "
                             f"see python -m mia_tf {verb} --help")
        if name in given:
            raise UsageError(f"{verb}: {flag(name)} is given twice")
        if not has_value:
            if name in booleans and (not rest or rest[0].startswith("--")):
                value = True
            elif not rest or rest[0].startswith("--"):
                raise UsageError(f"{verb} {flag(name)} needs a value")
            else:
                value = rest.pop(0)
        given[name] = _boolean(verb, name, value) if name in booleans else value
    missing = [flag(name) for name, p in parameters.items() if p.default is inspect.Parameter.empty and name not in given]
    if missing:
        raise UsageError(f"{verb} needs {' and '.join(missing)}; see python -m mia_tf {verb} --help")
    return verb, [verb] + [f"--{name}={value}" for name, value in given.items()]


def _hyphenate(text):
    """The docstring's `name:` argument lines and `--name` mentions, spelt as flags."""
    text = re.sub(r"^(\s+)([a-z][a-z0-9_]*):", lambda m: f"{m.group(1)}{flag(m.group(2))}:", text, flags=re.M)
    return re.sub(r"--([a-z][a-z0-9_]*)", lambda m: flag(m.group(1)), text)


def help_text(cli, verb=None) -> str:
    """The whole help of the program (verb None) or of one verb."""
    if verb is None:
        lines = [inspect.getdoc(cli), "", "Verbs:"]
        for name, method in sorted(verbs(cli).items()):
            lines.append(f"  {name:<10} {inspect.getdoc(method).splitlines()[0]}")
        return "\n".join(lines)
    method = verbs(cli)[verb]
    usage = []
    for name, p in inspect.signature(method).parameters.items():
        if p.default is inspect.Parameter.empty:
            usage.append(f"{flag(name)} {name.upper()}")
        elif isinstance(p.default, bool):
            usage.append(f"[{flag(name)} | {negated_flag(name)}]")
        else:
            usage.append(f"[{flag(name)} {name.upper()}]")
    return f"usage: python -m mia_tf {verb} {' '.join(usage)}\n\n{_hyphenate(inspect.getdoc(method))}"
