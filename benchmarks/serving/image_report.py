"""Summary and Markdown of the image serving benchmark (image_model.py)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
SECTION = "image-serving"
SIZES = (1, 32)
FLOOR = "bare/native_lists"

WHO = {
    "bare": "bare Starlette + onnxruntime inline (floor)",
    "driftgate": 'driftgate, isolation "auto" (ONNX in a worker process)',
    "driftgate_thread": 'driftgate, isolation "thread"',
    "mlserver": "MLServer + mlserver-sklearn (sklearn MLP, `parallel_workers=0`)",
}
FORMS = {
    "native_lists": "native JSON, nested lists",
    "native_b64": 'native JSON, `{"b64", "dtype": "float32"}`',
    "v2_json": "V2 REST, JSON FP32",
    "v2_binary": "V2 REST, binary extension",
    "grpc": "gRPC, raw_input_contents (Python loop)",
    "v2_binary_py": "V2 REST, binary extension (Python loop)",
}


def med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def per_round(raw: dict[str, Any], a: str, b: str, n: int, key: str = "rps") -> list[float]:
    """a / b within each round in which both ran."""
    if a not in raw or b not in raw:
        return []
    xa = {x["round"]: x[key] for x in raw[a]["runs"][n] if key in x}
    xb = {x["round"]: x[key] for x in raw[b]["runs"][n] if key in x}
    return [round(xa[r] / xb[r], 3) for r in sorted(xa) if xb.get(r)]


def ratio_pairs(raw: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = [(k, FLOOR) for k in raw if k != FLOOR]
    pairs += [(k, "bare/v2_binary") for k in raw if k.endswith("/v2_binary") and not k.startswith("bare")]
    pairs += [(k, "driftgate/" + k.split("/", 1)[1]) for k in raw if k.startswith("driftgate_thread/")]
    pairs += [("driftgate/grpc", "driftgate/v2_binary_py"), ("driftgate_thread/grpc", "driftgate_thread/v2_binary_py")]
    pairs += [(f"driftgate/{f}", "mlserver/v2_json") for f in ("native_lists", "v2_json", "v2_binary")]
    return pairs


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"targets": {}, "ratios": {}, "cpu_ratios": {}}
    for key, r in raw.items():
        out["targets"][key] = {}
        for n in SIZES:
            runs = r["runs"][n]
            rps = med([x["rps"] for x in runs])
            out["targets"][key][str(n)] = {
                "rps": rps,
                "images_s": None if rps is None else round(rps * n, 1),
                "p50_ms": med([x["p50_ms"] for x in runs]),
                "p99_ms": med([x["p99_ms"] for x in runs]),
                "errors": sum(x["errors_non2xx"] + x["errors_socket"] for x in runs),
                "core_share": med([x["core_share"] for x in runs if "core_share" in x]),
                "cpu_ms_per_req": med([x["cpu_ms_per_req"] for x in runs if "cpu_ms_per_req" in x]),
                "cpu_ms_per_req_children": med(
                    [x["cpu_ms_per_req_children"] for x in runs if "cpu_ms_per_req_children" in x]
                ),
                "rounds": len(runs),
            }
    for a, b in ratio_pairs(raw):
        for n in SIZES:
            rs = per_round(raw, a, b, n)
            if rs:
                out["ratios"][f"{a} / {b}, {n} image(s)"] = {"per_round": rs, "median": med(rs)}
            cpu = per_round(raw, a, b, n, "cpu_ms_per_req")
            if cpu:
                out["cpu_ratios"][f"{a} / {b}, {n} image(s)"] = {"per_round": cpu, "median": med(cpu)}
    return out


def fmt(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def label(key: str) -> tuple[str, str]:
    who, form = key.split("/", 1)
    return WHO.get(who, who), FORMS.get(form, form)


def markdown(doc: dict[str, Any]) -> str:
    m, fl, s = doc["method"], doc["in_process_floor_us"], doc["summary"]
    readings = [doc["load_avg_before"], *doc["load_avg_after_rounds"]]
    loads = ", ".join("/".join(f"{x:.1f}" for x in la) for la in readings)
    versions = "; ".join(f"{k.removeprefix('image_')} {v}" for k, v in doc["versions"].items())
    lines = [
        "## Image model serving (issue 22)",
        "",
        f"Command: `{doc['command']}` (run {doc['when']}; {doc['machine']}; {doc['wall_s']} s in all). The model: "
        "issue 22's ONNX digits MLP (`driftgate.demo.media_models`: MLPClassifier, 64 hidden units, on 8x8 digit "
        "images, skl2onnx, input float32 [None, 64]), registered with its declared schema (`image`: tensor "
        "[8, 8] float32, media image, max 16), 1 or 32 held-out images per request. Every server on core 0 "
        f"(`taskset -c 0`), started first, kept up and stopped with SIGSTOP while another is loaded; REST load "
        f"`wrk -t1 -c{m['conns']}` (post.lua) on core 1. gRPC load: no ghz on this machine, so "
        "`grpc_vs_rest.py`'s Python loop (grpc.aio, one channel, 16 calls in flight, prebuilt ModelInferRequest "
        "bytes with raw_input_contents, what tritonclient.grpc sends); the same loop also posts the V2 binary "
        "body (aiohttp), and gRPC is compared with that, not with wrk. "
        f"{m['rounds']} alternating rounds of {m['warmup_s']:g} s warm-up + {m['measured_s']:g} s measured per "
        "(target, images) pair; medians over rounds, ratios within a round, then the median. "
        f"Machine load (1/5/15-min load average) before and after each round: {loads} on 2 cores shared with "
        "other sessions' test runs: absolute numbers are noisy, read the ratios. "
        "In-process on the client core, ONNX Runtime (one thread) costs "
        + ", ".join(f"{fl[f'onnx_run_{n}_us']:,.0f} us for {n} image(s)" for n in SIZES)
        + "; parse the nested-list body + run + serialise "
        + ", ".join(f"{fl[f'parse_run_serialise_{n}_us']:,.0f} us" for n in SIZES)
        + "; driftgate's decoding and schema check of the native body (`decode_native` + `to_columns`): nested "
        + "lists "
        + ", ".join(f"{fl.get(f'driftgate_decode_native_lists_{n}_us', 0):,.0f} us" for n in SIZES)
        + ", b64 "
        + ", ".join(f"{fl.get(f'driftgate_decode_native_b64_{n}_us', 0):,.0f} us" for n in SIZES)
        + ". driftgate logs every prediction (descriptors for every row, 5 % of raw payloads) as by default. "
        "**Server CPU ms/req** is the CPU time of the server's process group (its main process and, in brackets, "
        "its children: ONNX worker processes, log writer, monitor) over the measured run divided by its requests; "
        "**core share** is that CPU time over the run's wall time. Where other work took core 0 too, the core "
        "share falls below 1 and req/s with it; CPU per request does not count the time the server waited for "
        "the core (caches shared with other work still inflate it).",
        "",
        "| server | wire form | img/req | req/s | images/s | p50 ms | p99 ms | errors | x floor req/s "
        "| server CPU ms/req (of it in children) | x floor CPU/req | core share |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in SIZES:
        for key, t in s["targets"].items():
            r = t[str(n)]
            if r["rps"] is None:
                continue
            ratio = s["ratios"].get(f"{key} / {FLOOR}, {n} image(s)")
            cpu = s["cpu_ratios"].get(f"{key} / {FLOOR}, {n} image(s)")
            floor = "1" if key == FLOOR else fmt(ratio and ratio["median"], ".2f")
            floor_cpu = "1" if key == FLOOR else fmt(cpu and cpu["median"], ".2f")
            who, form = label(key)
            lines.append(
                f"| {who} | {form} | {n} | {fmt(r['rps'])} | {fmt(r['images_s'])} | {fmt(r['p50_ms'], '.2f')} | "
                f"{fmt(r['p99_ms'], '.2f')} | {r['errors']} | {floor} | {fmt(r.get('cpu_ms_per_req'), '.2f')} "
                f"({fmt(r.get('cpu_ms_per_req_children'), '.2f')}) | {floor_cpu} | {fmt(r.get('core_share'), '.2f')} |"
            )
    lines += [
        "",
        "| ratio (same round) | req/s per round | req/s median | CPU/req per round | CPU/req median |",
        "|---|---|---:|---|---:|",
    ]
    for key, r in s["ratios"].items():
        if f"/ {FLOOR}," in key:
            continue  # in the table above
        c = s["cpu_ratios"].get(key)
        cpu = f"{', '.join(f'{x:g}' for x in c['per_round'])} | {c['median']:g}" if c else "- | -"
        lines.append(f"| {key} | {', '.join(f'{x:g}' for x in r['per_round'])} | {r['median']:g} | {cpu} |")
    rss = ", ".join(f"{k.removeprefix('image_')} {v:,.0f} MB" for k, v in doc["rss_mb"].items() if v)
    lines += ["", f"Versions: {versions or '-'}. Resident memory (server and its children, max over rounds): {rss}."]
    for key, why in doc["notes"].items():
        lines.append(f"- **{key}**: {why}")
    return "\n".join(lines)


def write_doc(md: str) -> None:
    """Replace this section between its markers (re-reading the file: others edit other sections), or append it."""
    text = DOC.read_text()
    block = f"<!-- {SECTION}:start -->\n{md}\n<!-- {SECTION}:end -->"
    new, n = re.subn(rf"<!-- {SECTION}:start -->\n.*?\n<!-- {SECTION}:end -->", lambda _: block, text, flags=re.S)
    DOC.write_text(new if n == 1 else text.rstrip("\n") + "\n\n" + block + "\n")
