"""deploy/Dockerfile and .dockerignore, read statically (no Docker engine runs here): the stages, the user,
the entry point, what goes into the build context and what must not."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tradewind.config import Settings

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
SECRETISH = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|DATABASE_URL|API_KEY|PRIVATE", re.IGNORECASE)


@dataclass
class Instruction:
    op: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    body: list[Instruction]

    def ops(self, op: str) -> list[str]:
        return [i.args for i in self.body if i.op == op]


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        op, _, args = (pending + line).partition(" ")
        out.append(Instruction(op.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def stages() -> list[Stage]:
    found: list[Stage] = []
    for ins in instructions(DOCKERFILE.read_text()):
        if ins.op == "FROM":
            parts = ins.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            found.append(Stage(parts[0], name, []))
        elif found:
            found[-1].body.append(ins)
        else:
            assert ins.op == "ARG", f"{ins.op} before the first FROM"
    return found


def test_the_first_stage_builds_the_web_app_with_node_20() -> None:
    first = stages()[0]
    assert first.base.startswith("node:20") and first.name == "frontend"
    runs = " && ".join(first.ops("RUN"))
    assert "npm ci" in runs and "npm run build" in runs
    assert runs.index("npm ci") < runs.index("npm run build")


def test_the_built_web_app_lands_where_vite_writes_it_and_the_package_ships_it() -> None:
    vite = (ROOT / "frontend" / "vite.config.ts").read_text()
    out_dir = re.search(r"outDir:\s*[\"']([^\"']+)[\"']", vite).group(1)  # type: ignore[union-attr]
    built = (ROOT / "frontend" / out_dir).resolve().relative_to(ROOT).as_posix()
    assert built == "src/tradewind/web/static/app"
    first, python = stages()[0], stages()[1]
    workdir = first.ops("WORKDIR")[0]
    in_stage = posixpath.normpath(posixpath.join(workdir, out_dir))  # where it is inside the frontend stage
    copies = [shlex.split(c) for c in python.ops("COPY") if c.startswith(f"--from={first.name}")]
    assert [(c[1].rstrip("/"), c[2].rstrip("/")) for c in copies] == [(in_stage, built)]
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "tradewind"
    ]
    assert "web/static/**/*" in package_data


def test_the_runtime_is_slim_python_3_11_with_the_package_and_no_dev_extras() -> None:
    runtime = stages()[-1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", runtime.base)
    everything = " ".join(i.args for s in stages() for i in s.body)
    assert re.search(r"pip install \.(\s|$)", everything), "the package is installed from the context"
    assert "[dev]" not in everything and "-e " not in everything
    assert all(i.op != "RUN" or "apt-get install" not in i.args for i in runtime.body), "no system packages"


def test_the_runtime_runs_as_the_non_root_user_the_pods_expect() -> None:
    runtime = stages()[-1]
    users = runtime.ops("USER")
    assert users, "the image must not run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "a numeric uid, so that Kubernetes can prove runAsNonRoot"
    assert gid == "" or (gid.isdigit() and int(gid) > 0)
    last_user = max(i for i, ins in enumerate(runtime.body) if ins.op == "USER")
    assert all(ins.op != "RUN" for ins in runtime.body[last_user:]), "nothing runs as root after USER"
    assert f"--uid {uid}" in " ".join(runtime.ops("RUN"))
    web = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "web.yaml").read_text())
    assert web["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_the_entry_point_is_tradewind_and_the_default_command_is_the_web_server() -> None:
    runtime = stages()[-1]
    assert [json.loads(e) for e in runtime.ops("ENTRYPOINT")] == [["tradewind"]], (
        "exec form: signals reach tradewind"
    )
    assert [json.loads(c) for c in runtime.ops("CMD")] == [["run", "web"]]
    env = " ".join(runtime.ops("ENV"))
    assert "TRADEWIND_HOST=0.0.0.0" in env, "a pod must bind every interface, not the loopback default"
    exposed = {int(p) for e in runtime.ops("EXPOSE") for p in e.split()}
    defaults = Settings.model_fields
    assert exposed == {defaults["port"].default, defaults["metrics_port"].default}


def test_no_secret_is_baked_into_the_image() -> None:
    for stage in stages():
        for ins in stage.body:
            if ins.op in ("ENV", "ARG"):
                names = re.findall(r"(\w+)=", ins.args) or [ins.args.split()[0]]
                assert not any(SECRETISH.search(n) for n in names), f"{ins.op} {ins.args}"
            if ins.op in ("COPY", "ADD"):
                assert not SECRETISH.search(ins.args) and ".env" not in ins.args, ins.args


def test_the_version_label_is_the_package_version() -> None:
    args = dict(a.split("=", 1) for a in stages()[-1].ops("ARG") if "=" in a)
    assert args["VERSION"] == VERSION


# --- .dockerignore ------------------------------------------------------------------------------------


def ignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _regex(pattern: str) -> re.Pattern[str]:
    """Docker's matching (Go's filepath.Match plus `**`), enough for the patterns used here: a pattern that
    matches a folder excludes everything in it."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "(?:/.*)?")


def ignored(path: str) -> bool:
    return any(_regex(p.strip("/")).fullmatch(path) for p in ignore_patterns())


def test_dockerignore_uses_no_negations_the_check_below_cannot_follow() -> None:
    assert not [p for p in ignore_patterns() if p.startswith("!")]


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "frontend/node_modules/vite/package.json",
        "src/tradewind/web/static/app/index.html",
        "src/tradewind/__pycache__/cli.cpython-311.pyc",
        ".env",
        "deploy/k8s/.env.prod",
        "data/tradewind.db",
        "tests/unit/test_config.py",
        "secret.key",
    ],
)
def test_local_state_builds_and_secrets_stay_out_of_the_build_context(path: str) -> None:
    assert ignored(path)


def test_everything_the_dockerfile_copies_from_the_context_is_in_it() -> None:
    sources: list[str] = []
    for stage in stages():
        for copy in stage.ops("COPY"):
            args = [a for a in shlex.split(copy) if not a.startswith("--")]
            if not copy.startswith("--from"):
                sources += args[:-1]
    assert sources, "the Dockerfile copies nothing from the context"
    for src in sources:
        path = ROOT / src
        assert path.exists(), f"COPY {src}: not in the repository"
        assert not ignored(src.rstrip("/")), f"COPY {src}: excluded by .dockerignore"
        if path.is_dir():  # the sources inside must survive the ignore file too
            for f in path.rglob("*"):
                rel = f.relative_to(ROOT).as_posix()
                if f.is_file() and f.suffix in (
                    ".py",
                    ".ts",
                    ".tsx",
                    ".json",
                    ".lua",
                    ".ini",
                    ".html",
                    ".mako",
                ):
                    if "node_modules" in rel or "__pycache__" in rel or "/static/app/" in rel:
                        continue
                    assert not ignored(rel), f"{rel} would be missing from the image"
