"""Shared by the monitoring unit tests: paths, promtool, and rendering with the roles' own templates."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
ROLES = ROOT / "roles"
FIXTURE_INVENTORY = HERE / "inventory"
LAB_INVENTORY = ROOT / "inventories" / "lab"


class Sources(tuple):
    """Inventory sources passed together, as `-i a -i b`."""

    @property
    def name(self):
        return "+".join(path.name for path in self)


def inventory_args(inventory):
    return [arg for path in (inventory if isinstance(inventory, tuple) else (inventory,)) for arg in ("-i", str(path))]


# The production example is the shared fleet settings plus every region, passed together.
_PRODUCTION = ROOT / "inventories" / "production"
PRODUCTION_INVENTORIES = [Sources([_PRODUCTION / "fleet",
                                   *sorted(p for p in _PRODUCTION.glob("*") if p.is_dir() and p.name != "fleet")])]
BIN = Path(sys.executable).parent


def find_tool(name):
    candidates = [os.environ.get(name.upper()), ROOT / ".cache" / "prometheus" / "usr" / "bin" / name,
                  shutil.which(name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail(f"{name} not found: run `make promtool` (it unpacks Debian's prometheus package into .cache/)")


def ansible_env(collections=ROOT / ".collections"):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    return env


def render(inventory, out_dir, extra_vars=None, hosts="monitoring", collections=ROOT / ".collections"):
    """Run render.yml; return (returncode, output). Files land in out_dir/<host>/.

    ``collections`` is the collections path the roles and filters come from (a changed copy of the collection)."""
    variables = {
        "render_dir": str(out_dir),
        "render_hosts": hosts,
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        # Point rule_files at the rendered rules, so `promtool check config` checks them too.
        "prometheus_config_dir": "{{ render_dir }}/{{ inventory_hostname }}",
    }
    variables.update(extra_vars or {})
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), *inventory_args(inventory), str(HERE / "render.yml"),
         "-e", json.dumps(variables)],
        capture_output=True, text=True, cwd=ROOT, env=ansible_env(collections), timeout=300, check=False)
    return result.returncode, result.stdout + result.stderr


def collection_copy(directory, defaults):
    """A copy of the collection under ``directory`` (a collections path) whose roles' defaults are changed:
    ``defaults`` is ``{role: {variable: value}}``. Copied, not linked: the plugins find roles/ beside their own
    (resolved) files."""
    copy = directory / "ansible_collections" / "gpufleet" / "llm"
    for name in ("galaxy.yml", "meta", "plugins", "roles"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    for role, values in defaults.items():
        path = copy / "roles" / role / "defaults" / "main.yml"
        text = path.read_text()
        for name, value in values.items():
            text, count = re.subn(rf"^{name}:.*$", f"{name}: {json.dumps(value)}", text, flags=re.MULTILINE)
            assert count == 1, f"{role} has no default {name}"
        path.write_text(text)
    return directory


@functools.cache
def inventory_data(inventory):
    result = subprocess.run([str(BIN / "ansible-inventory"), *inventory_args(inventory), "--list"],
                            capture_output=True, text=True, cwd=ROOT, env=ansible_env(), timeout=120, check=True)
    return json.loads(result.stdout)


RENDERED_INVENTORIES = [FIXTURE_INVENTORY, LAB_INVENTORY, *PRODUCTION_INVENTORIES]


DASHBOARDS = sorted((ROLES / "grafana" / "files" / "dashboards").glob("*.json"))
# What Grafana substitutes before a query reaches Prometheus; "All" of a variable is ".*".
GRAFANA_SUBSTITUTIONS = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s",
                         "$region": ".*", "$host": ".*", "$key": ".*"}
# Raw metrics the collection relies on, by source: the model servers' vLLM names (the fleet's interface),
# the NGINX, node and DCGM exporters. Anything else a query reads must be a recording rule of ours.
VLLM_METRICS = {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                "vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket",
                "vllm:e2e_request_latency_seconds_bucket", "vllm:request_queue_time_seconds_bucket",
                "vllm:generation_tokens_total", "vllm:prompt_tokens_total", "vllm:request_success_total",
                "http_requests_total"}
EXPORTER_METRICS = {"up", "nginx_up", "nginx_connections_active", "nginx_connections_reading",
                    "nginx_connections_writing", "nginx_connections_waiting", "nginx_connections_accepted",
                    "nginx_connections_handled", "nginx_http_requests_total", "node_filesystem_avail_bytes",
                    "node_filesystem_size_bytes", "node_filesystem_readonly", "DCGM_FI_DEV_GPU_UTIL",
                    "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE",
                    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_XID_ERRORS"}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
             "inf", "nan"}


def grafana_substitute(expr):
    for variable, value in GRAFANA_SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr


def metric_names(expr):
    """Metric names a PromQL expression reads (a small scanner, enough for the expressions of this collection)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.groups()
        if not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def dashboard_queries(dashboard):
    """(where, expression) of every panel target and every query variable of a dashboard."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"{dashboard['uid']}/{panel['title']}/{target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["query"]["query"])
            yield f"{dashboard['uid']}/${variable['name']}", match.group(1)


_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)")


def boolify(expr):
    """Turn filtering comparisons into `bool` ones, so an alert's expression returns its signal even when
    nothing fires (label matchers inside {...} and strings are left alone)."""
    out, depth, quote, i = [], 0, None, 0
    while i < len(expr):
        char = expr[i]
        if quote:
            out.append(char)
            if char == "\\":
                out.append(expr[i + 1])
                i += 1
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            out.append(char)
        elif char in "{}":
            depth += 1 if char == "{" else -1
            out.append(char)
        elif depth == 0 and (match := _COMPARISON.match(expr, i)):
            out.append(match.group(1) + " bool")
            i += len(match.group(1))
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)
