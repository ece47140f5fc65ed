"""graders/faults/fstrace.py: the strace record parser and the power-loss model.

The parser is tested against strace's own escaping and argument syntax (hypothesis);
the model against an oracle: the canonical durable sequence (temp file, write, fsync,
rename, directory fsync, reply) is durable, with any number of unrelated calls and
threads interleaved, and every single mistake (a step dropped, the reply moved earlier)
is found. One test records a real program with strace when strace is installed.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graders.faults import fstrace
from graders.faults.fstrace import Watch, decode_c_string, judge, parse_trace, split_args

MEM = "/srv/mem"
REC = f"{MEM}/records/t-1.json"
TMP = f"{MEM}/records/.t-1.json.tmp"
WATCH = Watch(REC, ack=('"t-1"', 'collect_ok"'), content=('"t-1"',))


def c_escape(data: bytes) -> str:
    """How strace prints bytes (default style): C escapes, other bytes as 3-digit octal."""
    out = []
    for b in data:
        ch = chr(b)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif 32 <= b < 127:
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    return "".join(out)


@given(st.binary(max_size=200))
def test_decode_c_string_inverts_strace_escaping(data):
    assert decode_c_string(c_escape(data)) == data


arg_text = st.one_of(
    st.binary(max_size=30).map(lambda b: '"' + c_escape(b) + '"'),
    st.integers(-5, 10 ** 6).map(str),
    st.sampled_from(["O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC", "AT_FDCWD</x/y>", "RENAME_EXCHANGE",
                     "3</srv/mem/records/a,b(c).json>", "5<TCP:[127.0.0.1:7000->127.0.0.1:5555]>",
                     "1</dev/null<char 1:3>>", "[{iov_base=\"a,b\", iov_len=3}]", "NULL",
                     "{msg_name=NULL, msg_iov=[{iov_base=\"x)\", iov_len=2}], msg_flags=0}"]))


@given(st.lists(arg_text, min_size=1, max_size=6))
def test_split_args_recovers_the_arguments(args):
    got, rest = split_args(", ".join(args) + ") = 0")
    assert got == args
    assert rest.strip() == "= 0"


def test_parse_trace_joins_unfinished_and_resumed_calls():
    text = textwrap.dedent(f"""\
        10 1.000001 fsync(3<{TMP}> <unfinished ...>
        11 1.000002 write(4</srv/log>, "x", 1) = 1
        10 1.000003 <... fsync resumed>) = 0
        10 1.000004 +++ exited with 0 +++
        12 1.000005 write(4</srv/log>, "never finished", 14 <unfinished ...>
        """)
    calls = parse_trace(text)
    assert [(c.name, c.entry, c.exit, c.ret) for c in calls] == [("write", 1, 1, "1"), ("fsync", 0, 2, "0")]
    assert calls[1].args == (f"3<{TMP}>",)


# --- the model against an oracle ---------------------------------------------------------
def canonical(n_writes: int = 1) -> list[tuple[str, str]]:
    """The steps of SPEC §11.2 for a new record, as (step, strace call text)."""
    steps = [("open", f'openat(AT_FDCWD</app>, "{TMP}", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644) = 3<{TMP}>')]
    part = '{\\"task_id\\":\\"t-1\\",'
    for i in range(n_writes):
        steps.append(("write", f'write(3<{TMP}>, "{part if i == 0 else "more"}", 17) = 17'))
    steps += [("fsync", f"fsync(3<{TMP}>) = 0"),
              ("rename", f'rename("{TMP}", "{REC}") = 0'),
              ("dirfd", f'openat(AT_FDCWD</app>, "{MEM}/records", O_RDONLY|O_DIRECTORY) = 4<{MEM}/records>'),
              ("dirsync", f"fsync(4<{MEM}/records>) = 0"),
              ("ack", 'sendto(5<TCP:[127.0.0.1:7001->127.0.0.1:40000]>, "{\\"type\\":\\"collect_ok\\",'
                      '\\"task_id\\":\\"t-1\\"}\\n", 40, 0, NULL, 0) = 40')]
    return steps


NOISE = [f'write(2<pipe:[77]>, "{{\\"msg\\":\\"log t-1 collect_ok\\"}}\\n", 30) = 30',
         'openat(AT_FDCWD</app>, "/usr/lib/x.py", O_RDONLY|O_CLOEXEC) = 6</usr/lib/x.py>',
         'write(7</srv/mem/index>, "t-1", 3) = 3', "fsync(7</srv/mem/index>) = 0",
         'sendto(8<TCP:[127.0.0.1:7001->127.0.0.1:40001]>, "{\\"type\\":\\"hello_ok\\"}\\n", 20, 0, NULL, 0) = 20']


def render(calls: list[str], noise_at: dict[int, str], split: set[int]) -> str:
    """Lines of a record: pid 100 runs the steps; pid 200 adds noise; a step in `split`
    is printed unfinished/resumed around the noise line that follows it."""
    lines, t = [], 0
    for i, call in enumerate(calls):
        t += 1
        name, _, rest = call.partition("(")
        args, _, ret = rest.rpartition(") = ")
        if i in split:
            lines.append(f"100 {t}.000000 {name}({args} <unfinished ...>")
            lines.append(f"200 {t}.000001 {noise_at.get(i, NOISE[1])}")
            lines.append(f"100 {t}.000002 <... {name} resumed>) = {ret}")
        else:
            lines.append(f"100 {t}.000000 {call}")
            if i in noise_at:
                lines.append(f"200 {t}.000001 {noise_at[i]}")
    return "\n".join(lines) + "\n"


def findings(text: str, initial=()) -> set[str]:
    got = judge(text, cwd="/app", memdir=MEM, initial_files=list(initial), watches=[WATCH])
    return {f.kind for f in got}


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.dictionaries(st.integers(0, 9), st.sampled_from(NOISE), max_size=5),
       st.sets(st.integers(0, 9), max_size=3))
def test_the_canonical_sequence_is_durable_with_noise_and_threads(n_writes, noise, split):
    calls = [c for _s, c in canonical(n_writes)]
    split = {i for i in split if i < len(calls) - 1 and canonical(n_writes)[i][0] != "ack"}
    assert findings(render(calls, noise, split)) == set()


MISTAKES = {  # dropped step -> what a power loss can do
    "write": {"lost", "torn"}, "fsync": {"lost", "torn"}, "rename": {"lost"},
    "dirsync": {"lost"}, "ack": {"no-ack"},
}


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(MISTAKES)), st.dictionaries(st.integers(0, 9), st.sampled_from(NOISE), max_size=3))
def test_every_dropped_step_is_found(step, noise):
    calls = [c for s, c in canonical() if s != step]
    assert findings(render(calls, noise, set())) == MISTAKES[step]


@given(st.integers(0, 5))
def test_a_reply_before_the_directory_fsync_is_found(pos):
    steps = canonical()
    ack = steps.pop()
    pos = min(pos, len(steps) - 1)          # anywhere before the directory fsync completes
    steps.insert(pos, ack)
    assert "lost" in findings(render([c for _s, c in steps], {}, set()))


def test_a_concurrent_directory_fsync_started_before_the_rename_does_not_count():
    calls = [c for s, c in canonical() if s not in ("dirsync", "ack")]
    text = render(calls[:3], {}, set())       # open, write, fsync
    text += f"300 9.000000 fsync(4<{MEM}/records> <unfinished ...>\n"
    text += f'100 9.100000 rename("{TMP}", "{REC}") = 0\n'
    text += "300 9.200000 <... fsync resumed>) = 0\n"
    text += f"100 9.300000 {canonical()[-1][1]}\n"
    assert findings(text) == {"lost"}


def test_replacing_by_exchange_then_reusing_the_old_file_is_durable():
    old = f"{MEM}/records/.spare"
    text = render([c for _s, c in canonical()], {}, set())
    second = [
        f'openat(AT_FDCWD</app>, "{old}", O_WRONLY|O_CREAT|O_EXCL, 0644) = 3<{old}>',
        f'write(3<{old}>, "{{\\"task_id\\":\\"t-1\\",\\"v\\":2}}", 20) = 20', f"fsync(3<{old}>) = 0",
        f'renameat2(AT_FDCWD</app>, "{old}", AT_FDCWD</app>, "{REC}", RENAME_EXCHANGE) = 0',
        f"fsync(4<{MEM}/records>) = 0",
        # the old version, now at the spare name, is truncated for reuse: allowed
        f'openat(AT_FDCWD</app>, "{old}", O_WRONLY|O_TRUNC) = 3<{old}>']
    lines = [f"100 {20 + i}.000000 {c}" for i, c in enumerate(second)]
    assert findings(text + "\n".join(lines) + "\n") == set()
    # the same reuse BEFORE the exchange is durable truncates what the name may still hold
    reorder = second[:4] + [second[5], second[4]]
    lines = [f"100 {20 + i}.000000 {c}" for i, c in enumerate(reorder)]
    assert "lost" in findings(text + "\n".join(lines) + "\n")


def test_rewriting_the_record_in_place_is_torn():
    text = render([c for _s, c in canonical()], {}, set())
    text += f'100 30.000000 openat(AT_FDCWD</app>, "{REC}", O_WRONLY|O_TRUNC) = 3<{REC}>\n'
    text += f'100 30.100000 write(3<{REC}>, "{{\\"task_id\\":\\"t-1\\"}}", 14) = 14\n'
    text += f"100 30.200000 fsync(3<{REC}>) = 0\n"
    assert findings(text) == {"lost", "torn"}


def test_o_dsync_writes_need_no_fsync_and_sync_covers_everything():
    steps = canonical()
    calls = [c.replace("O_EXCL", "O_EXCL|O_DSYNC") for s, c in steps if s != "fsync"]
    assert findings(render(calls, {}, set())) == set()
    calls = [c for s, c in steps if s not in ("dirfd", "dirsync")]
    calls.insert(-1, "sync() = 0")
    assert findings(render(calls, {}, set())) == set()
    # sync() after the rename does not undo a rename of unsynced data (a torn window)
    calls = [c for s, c in steps if s not in ("fsync", "dirfd", "dirsync")]
    calls.insert(-1, "sync() = 0")
    assert findings(render(calls, {}, set())) == {"torn"}


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
@pytest.mark.parametrize("mode,expected", [("ok", set()), ("no-dir-fsync", {"lost"}),
                                           ("no-fsync", {"lost", "torn"})])
def test_a_real_program_recorded_by_strace(tmp_path, mode, expected):
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent("""\
        import os, socket, sys
        mode = sys.argv[1]
        os.makedirs("mem/records")
        a, b = socket.socketpair()
        tmp, rec = "mem/records/.t-1.json.tmp", "mem/records/t-1.json"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b'{"task_id": "t-1"}')
        if mode != "no-fsync":
            os.fsync(fd)
        os.close(fd)
        os.replace(tmp, rec)
        if mode == "ok":
            d = os.open("mem/records", os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(d)
            os.close(d)
        a.sendall(b'{"type": "collect_ok", "task_id": "t-1"}\\n')
        """))
    out = tmp_path / "trace.txt"
    subprocess.run(fstrace.strace_argv(shutil.which("strace"), str(out)) + [sys.executable, str(prog), mode],
                   cwd=tmp_path, check=True, timeout=30, capture_output=True)
    mem = str(tmp_path / "mem")
    got = judge(out.read_text(), cwd=str(tmp_path), memdir=mem, initial_files=[],
                watches=[Watch(f"{mem}/records/t-1.json", ('"t-1"', 'collect_ok"'), ('"t-1"',))])
    assert {f.kind for f in got} == expected


@pytest.mark.skipif(shutil.which("strace") is None or shutil.which("node") is None,
                    reason="strace or node not installed")
@pytest.mark.parametrize("mode,expected", [("ok", set()), ("no-dir-fsync", {"lost"}),
                                           ("no-fsync", {"lost", "torn"})])
def test_a_node_program_with_its_thread_pool(tmp_path, mode, expected):
    """libuv does file I/O on pool threads and opens directories without O_DIRECTORY."""
    from pathlib import Path
    prog = Path(__file__).parent / "fixtures" / "fstrace_node_store.js"
    out = tmp_path / "trace.txt"
    subprocess.run(fstrace.strace_argv(shutil.which("strace"), str(out)) + ["node", str(prog), mode],
                   cwd=tmp_path, check=True, timeout=30, capture_output=True)
    mem = str(tmp_path / "mem")
    watches = [Watch(f"{mem}/records/{t}.json", (f'"{t}"', 'collect_ok"'), (f'"{t}"',)) for t in ("t-1", "t-2")]
    got = judge(out.read_text(), cwd=str(tmp_path), memdir=mem, initial_files=[], watches=watches)
    assert {f.kind for f in got} == expected


def test_a_memory_dir_reached_through_a_symlink():
    """Arguments name the path the service was given; strace shows fds by real path."""
    real = "/real/mem"
    text = render([c for _s, c in canonical()], {}, set())
    text = text.replace(f"<{MEM}", f"<{real}")            # every fd decoration: the real path
    assert findings(text) == {"lost", "torn"}              # unaliased: the fsyncs are not seen
    got = judge(text, cwd="/app", memdir=MEM, initial_files=[], watches=[WATCH], aliases={real: MEM})
    assert got == []


def test_pwritev2_with_rwf_dsync_needs_no_fsync():
    steps = [(s, c) for s, c in canonical() if s != "fsync"]
    calls = [c.replace(f'write(3<{TMP}>, "', f'pwritev2(3<{TMP}>, [{{iov_base="').replace('", 17) = 17',
                                                                                    '", iov_len=17}], 1, -1, RWF_DSYNC) = 17')
             if s == "write" else c for s, c in steps]
    assert findings(render(calls, {}, set())) == set()
    assert findings(render([c.replace("RWF_DSYNC", "0") for c in calls], {}, set())) == {"lost", "torn"}
