#!/usr/bin/env python3
"""Raw ioctls on /dev/wasmfw (layouts from `wasmfw uapi-layout`), bypassing the wasmfw
CLI's own checks, so the module's own answers are what gets tested.

    wfioctl.py load FILE.wasm [fuel] [on_fault] [memory_limit]  "id <n> stack <bytes>" or "errno <e> <err text>"
    wfioctl.py const NAME                 a constant of the interface (WASMFW_MAX_FUEL): its value
    wfioctl.py unload ID
    wfioctl.py attach ID HOOK IFNAME      HOOK 1 netfilter, 2 xdp (the module's slot only,
                                          no xdp-bridge program): "attached" or "errno <e>"
    wfioctl.py detach IFNAME              "detached" or "errno <e>"
    wfioctl.py listtime                   seconds one LIST ioctl takes (no interpreter start-up)
    wfioctl.py list                       one line per filter: "id <n> hook <h> ifindex <i> netns <ino> name <s>"
    wfioctl.py mapfill ID MAP N KSIZE VSIZE   N updates, key i (little-endian, KSIZE bytes)
    wfioctl.py mapdump ID MAP [CAP]       pages through the map: "records <r> pages <p> bytes <b>"
    wfioctl.py mapchurn ID MAP SECS KSIZE VSIZE   update/delete/dump in a loop: "ops <n> dumps <d>"
    wfioctl.py testrun ID HEXPKT REPEAT [LINK]    "verdict <v> ns <n>" or "errno <e>"
    wfioctl.py logread ID CURSOR CAP MODE one LOG_READ; MODE good, badbuf (records to an
                                          unmapped address) or roreq (the request in a read-only
                                          page: the reply cannot be written): "count <n> cursor
                                          <c> lost <l> dropped <d> seqs <first>-<last>" or "errno <e>"
    wfioctl.py capefault ID VERDICTS CMD...   starts a capture of filter ID (this process owns it),
                                          runs CMD (traffic), then CAPTURE_READs with an unmapped
                                          buffer, with a read-only request, then two good ones:
                                          "badbuf <errno> roreq <errno> first <count> lost <l>
                                          again <count> seqs_equal <0|1>"
    wfioctl.py fuzz N SEED                malformed ioctls (every number, random sizes and
                                          fields): "calls <n> ok <k> errnos <e:count,...>"
    wfioctl.py mutload N SEED FILE.wasm...  N byte-level mutants of the files (seeded): each is
                                          loaded, run once on 3 packets if it loads, unloaded:
                                          "mutants <n> refused <r> loaded <l> ran <k> errnos <e:count,...>"
    wfioctl.py faultload FILE.wasm STRIDE the allocator hook fails the Nth allocation of a
                                          load, for N = 1, 1+STRIDE, ... up to the allocations a
                                          load makes: "allocs <a> loads <l> ok <k> enomem <m> other <o>"
"""
import collections, ctypes, fcntl, json, os, random, struct, subprocess, sys, time

class Uapi:
    """The module interface as the wasmfw binary was built with it (the one
    Rust definition, crate wasmfw-uapi in kmod/uapi): struct layouts, constants
    and ioctl numbers from `wasmfw uapi-layout`, so no layout is copied here."""
    def __init__(self):
        here = os.path.dirname(os.path.abspath(__file__))
        exe = os.environ.get("WASMFW_BIN") or os.path.join(here, "../../target/release/wasmfw")
        d = json.loads(subprocess.check_output([exe if os.path.exists(exe) else "wasmfw", "uapi-layout"]))
        self.structs, self.const = d["structs"], d["constants"]

    def size(self, name):
        return self.structs[name]["size"]

    def pack(self, name, /, **values):
        """struct wasmfw_<name> with the given fields (ints little-endian,
        masked to the field's size; bytes/str NUL-padded), the rest zero."""
        buf = bytearray(self.size(name))
        for field, off, size in self.structs[name]["fields"]:
            if field not in values:
                continue
            v = values.pop(field)
            if isinstance(v, str):
                v = v.encode()
            if isinstance(v, bytes):
                buf[off:off + size] = v[:size].ljust(size, b"\0")
            else:
                buf[off:off + size] = (v & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        assert not values, "no such field in wasmfw_%s: %s" % (name, list(values))
        return buf

    def unpack(self, name, buf, at=0):
        """A dict of the fields: ints (unsigned) for 1-8 byte fields, bytes
        up to the first NUL for the char arrays."""
        out = {}
        for field, off, size in self.structs[name]["fields"]:
            raw = bytes(buf[at + off:at + off + size])
            out[field] = int.from_bytes(raw, "little") if size in (1, 2, 4, 8) else raw.split(b"\0")[0]
        return out

    def ioc(self, name):
        return self.const["WASMFW_IOC_" + name]

U = Uapi()
PARAMS = "/sys/module/wasmfw/parameters/"

def signed32(v):
    return v - (1 << 32) if v >= 1 << 31 else v

def unload_id(fd, fid):
    fcntl.ioctl(fd, U.ioc("UNLOAD"), U.pack("unload", id=fid))

def test_run(fd, fid, pkt, repeat, link):
    pb = ctypes.create_string_buffer(pkt, len(pkt) or 1)
    req = U.pack("test_run", id=fid, link=link, packet=ctypes.addressof(pb), packet_len=len(pkt), repeat=repeat)
    fcntl.ioctl(fd, U.ioc("TEST_RUN"), req)
    return U.unpack("test_run", req)

def load(fd, wasm, fuel=20000, on_fault=0, memory_limit=131072):
    wbuf = ctypes.create_string_buffer(wasm, len(wasm) or 1)
    ebuf = ctypes.create_string_buffer(256)
    req = U.pack("load", wasm=ctypes.addressof(wbuf), wasm_len=len(wasm), fuel=fuel, memory_limit=memory_limit,
                 on_fault=on_fault, name="raw", err=ctypes.addressof(ebuf), err_len=256)
    try:
        fcntl.ioctl(fd, U.ioc("LOAD"), req)
    except OSError as e:
        return None, e.errno, ebuf.value.decode(errors="replace")
    f = U.unpack("load", req)
    return f["id"], f["stack_used"], None

def map_op(fd, fid, name, op, key, value=b""):
    kb = ctypes.create_string_buffer(key, len(key) or 1)
    vb = ctypes.create_string_buffer(value, len(value) or 1)
    req = U.pack("map_op", id=fid, op=op, map=name, key=ctypes.addressof(kb), value=ctypes.addressof(vb),
                 key_len=len(key), value_len=len(value))
    fcntl.ioctl(fd, U.ioc("MAP_OP"), req)
    return signed32(U.unpack("map_op", req)["result"])

def map_dump(fd, fid, name, cap):
    """Every page of a map: (pages, bytes)."""
    buf = ctypes.create_string_buffer(cap)
    cursor, pages, total = 0, 0, 0
    while True:
        req = U.pack("map_dump", id=fid, cursor=cursor, map=name, buf=ctypes.addressof(buf), cap=cap)
        fcntl.ioctl(fd, U.ioc("MAP_DUMP"), req)
        f = U.unpack("map_dump", req)
        cursor = f["cursor"]
        pages += 1
        total += f["len"]
        if cursor == 0:
            return pages, total

# An address no mapping covers (as in fuzz()'s pointers) and a read-only page.
UNMAPPED = 0xdead0000
PROT_READ, MAP_PRIVATE, MAP_ANONYMOUS = 1, 2, 0x20

def readonly_copy(req):
    """`req` in a page mapped read-only: the module can read the request but
    not write its reply. Returns (address, page) - keep the page alive."""
    import mmap
    m = mmap.mmap(-1, 4096, flags=MAP_PRIVATE | MAP_ANONYMOUS, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    m.write(bytes(req))
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(4096), PROT_READ) != 0:
        sys.exit("mprotect: errno %d" % ctypes.get_errno())
    return addr, m

def ioctl_ptr(fd, nr, addr):
    """An ioctl whose argument is a raw address: 0 or the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ioctl(fd, ctypes.c_ulong(nr), ctypes.c_void_p(addr)) == 0:
        return 0
    return ctypes.get_errno()

def log_read(fd, fid, cursor, cap, mode):
    """One LOG_READ: (errno, reply fields, records)."""
    rec = U.size("log_record")
    buf = ctypes.create_string_buffer(cap * rec or 1)
    req = U.pack("log_read", id=fid, cursor=cursor, cap=cap,
                 buf=UNMAPPED if mode == "badbuf" else ctypes.addressof(buf))
    if mode == "roreq":
        addr, page = readonly_copy(req)
        e = ioctl_ptr(fd, U.ioc("LOG_READ"), addr)
        del page
        return e or -1, None, None  # a read-only reply cannot have succeeded
    try:
        fcntl.ioctl(fd, U.ioc("LOG_READ"), req)
    except OSError as e:
        return e.errno, None, None
    f = U.unpack("log_read", req)
    return 0, f, [U.unpack("log_record", buf.raw, i * rec) for i in range(f["count"])]

def capture_read(fd, fid, cap, mode):
    """One CAPTURE_READ: (errno, reply fields, the bytes read)."""
    buf = ctypes.create_string_buffer(cap)
    req = U.pack("capture_read", id=fid, cap=cap, buf=UNMAPPED if mode == "badbuf" else ctypes.addressof(buf))
    if mode == "roreq":
        addr, page = readonly_copy(req)
        e = ioctl_ptr(fd, U.ioc("CAPTURE_READ"), addr)
        del page
        return e or -1, None, None
    try:
        fcntl.ioctl(fd, U.ioc("CAPTURE_READ"), req)
    except OSError as e:
        return e.errno, None, None
    f = U.unpack("capture_read", req)
    return 0, f, buf.raw[:f["len"]]

def capefault(fd, fid, verdicts, cmd):
    fcntl.ioctl(fd, U.ioc("CAPTURE_CTL"), U.pack("capture_ctl", id=fid, op=U.const["WASMFW_CAPTURE_START"],
                                                    verdicts=verdicts, snaplen=U.const["WASMFW_CAPTURE_SNAPLEN"]))
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cap = 1 << 16
    e_buf, _, _ = capture_read(fd, fid, cap, "badbuf")
    e_req, _, _ = capture_read(fd, fid, cap, "roreq")
    e, first, data = capture_read(fd, fid, cap, "good")
    if e:
        sys.exit("capefault: good CAPTURE_READ: errno %d" % e)
    e, again, data2 = capture_read(fd, fid, cap, "good")
    if e:
        sys.exit("capefault: second CAPTURE_READ: errno %d" % e)
    # Nothing new arrived in between (the traffic is over): the second read
    # is empty if the first consumed what it returned.
    print("badbuf", e_buf, "roreq", e_req, "first", first["count"], "lost", first["lost"],
          "again", again["count"], "bytes", len(data))
    fcntl.ioctl(fd, U.ioc("CAPTURE_CTL"), U.pack("capture_ctl", id=fid, op=U.const["WASMFW_CAPTURE_STOP"]))

def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "const":
        print(U.const[a[0]])
        return
    fd = os.open("/dev/wasmfw", os.O_RDWR)
    if cmd == "load":
        fid, x, err = load(fd, open(a[0], "rb").read(), int(a[1]) if len(a) > 1 else 20000,
                           int(a[2]) if len(a) > 2 else 0, int(a[3]) if len(a) > 3 else 131072)
        print("errno", x, err) if fid is None else print("id", fid, "stack", x)
    elif cmd == "unload":
        unload_id(fd, int(a[0]))
        print("unloaded")
    elif cmd == "attach":
        try:
            fcntl.ioctl(fd, U.ioc("ATTACH"), U.pack("attach", id=int(a[0]), hook=int(a[1]), ifname=a[2]))
            print("attached")
        except OSError as e:
            print("errno", e.errno)
    elif cmd == "detach":
        try:
            fcntl.ioctl(fd, U.ioc("DETACH"), U.pack("detach", ifname=a[0]))
            print("detached")
        except OSError as e:
            print("errno", e.errno)
    elif cmd == "listtime":
        buf = ctypes.create_string_buffer(64 * U.size("info"))
        req = U.pack("list", buf=ctypes.addressof(buf), cap=64)
        t0 = time.monotonic()
        fcntl.ioctl(fd, U.ioc("LIST"), req)
        print("%.3f" % (time.monotonic() - t0))
    elif cmd == "listlat":
        # N LIST ioctls GAP seconds apart: the median and longest wait for
        # the control mutex (t_rtnl.sh: during loads).
        buf = ctypes.create_string_buffer(64 * U.size("info"))
        req = U.pack("list", buf=ctypes.addressof(buf), cap=64)
        lat = []
        for _ in range(int(a[0])):
            t0 = time.monotonic()
            fcntl.ioctl(fd, U.ioc("LIST"), req)
            lat.append(time.monotonic() - t0)
            time.sleep(float(a[1]))
        lat.sort()
        print("median %.4f longest %.4f" % (lat[(len(lat) - 1) // 2], lat[-1]))
    elif cmd == "list":
        cap = 64
        buf = ctypes.create_string_buffer(cap * U.size("info"))
        req = U.pack("list", buf=ctypes.addressof(buf), cap=cap)
        fcntl.ioctl(fd, U.ioc("LIST"), req)
        count = U.unpack("list", req)["count"]
        for i in range(min(count, cap)):
            f = U.unpack("info", buf.raw, i * U.size("info"))
            print("id", f["id"], "hook", f["hook"], "ifindex", f["ifindex"], "netns", f["netns_ino"],
                  "name", f["name"].decode(errors="replace"))
    elif cmd == "mapfill":
        fid, name, n, ks, vs = int(a[0]), a[1], int(a[2]), int(a[3]), int(a[4])
        bad = 0
        for i in range(n):
            if map_op(fd, fid, name, 1, i.to_bytes(ks, "little"), bytes([i & 0xff]) * vs) != 0:
                bad += 1
        print("updates", n, "failed", bad)
    elif cmd == "mapdump":
        fid, name, cap = int(a[0]), a[1], int(a[2]) if len(a) > 2 else 1 << 20
        pages, total = map_dump(fd, fid, name, cap)
        print("pages", pages, "bytes", total)
    elif cmd == "mapchurn":
        fid, name, secs, ks, vs = int(a[0]), a[1], float(a[2]), int(a[3]), int(a[4])
        end, ops, dumps, rnd = time.time() + secs, 0, 0, random.Random(1)
        while time.time() < end:
            for _ in range(50):
                k = rnd.randrange(4096).to_bytes(ks, "little")
                if rnd.random() < 0.6:
                    map_op(fd, fid, name, 1, k, b"\x01" * vs)
                else:
                    map_op(fd, fid, name, 2, k)
                ops += 1
            map_dump(fd, fid, name, 4096)
            dumps += 1
        print("ops", ops, "dumps", dumps)
    elif cmd == "testrun":
        try:
            f = test_run(fd, int(a[0]), bytes.fromhex(a[1]), int(a[2]), int(a[3]) if len(a) > 3 else 2)
        except OSError as e:
            print("errno", e.errno)
            return
        print("verdict", f["verdict"], "ns", f["total_ns"])
    elif cmd == "logread":
        e, f, recs = log_read(fd, int(a[0]), int(a[1]), int(a[2]), a[3])
        if e:
            print("errno", e)
        else:
            seqs = "%d-%d" % (recs[0]["seq"], recs[-1]["seq"]) if recs else "none"
            print("count", f["count"], "cursor", f["cursor"], "lost", f["lost"], "dropped", f["dropped"], "seqs", seqs)
    elif cmd == "capefault":
        capefault(fd, int(a[0]), int(a[1]), a[2:])
    elif cmd == "fuzz":
        fuzz(fd, int(a[0]), int(a[1]))
    elif cmd == "mutload":
        mutload(fd, int(a[0]), int(a[1]), [open(p, "rb").read() for p in a[2:]])
    elif cmd == "faultload":
        faultload(fd, open(a[0], "rb").read(), int(a[1]))
    elif cmd == "loadloop":
        loadloop(fd, open(a[0], "rb").read(), float(a[1]))
    else:
        sys.exit("unknown command " + cmd)

def budget_deadline():
    """fuzz and mutload stop at N requests or after WFIOCTL_SECS seconds,
    whichever comes first, and print how many they did: a slow host does
    fewer, and the test decides how few is too few."""
    return time.monotonic() + float(os.environ.get("WFIOCTL_SECS", "inf"))

def fuzz(fd, n, seed):
    """Random requests for every ioctl number: right and wrong sizes and
    directions, random ids/lengths/indices/pointers (into a valid buffer,
    NULL, or unmapped). The module must answer each with an errno or a
    well-formed success; filters it loads are unloaded at the end."""
    rnd = random.Random(seed)
    # Every ioctl number the module knows, with its size (from its encoding).
    sizes = {}
    for k, v in U.const.items():
        if k.startswith("WASMFW_IOC_") and k != "WASMFW_IOC_MAGIC":
            sizes[v & 0xff] = (v >> 16) & 0x3fff
    unknown = [n for n in range(max(sizes) + 3) if n not in sizes] + [255]
    scratch = ctypes.create_string_buffer(1 << 16)
    base = ctypes.addressof(scratch)
    ptrs = [0, base, base + 1, base + (1 << 16) - 8, 0xdead0000, 1 << 47, (1 << 64) - 4096]
    counts, ok, done = collections.Counter(), 0, 0
    deadline = budget_deadline()
    for done in range(1, n + 1):
        if time.monotonic() > deadline:
            done -= 1
            break
        nr = rnd.choice(list(sizes) + unknown)
        size = sizes.get(nr, 8)
        if rnd.random() < 0.2:
            size = rnd.choice([0, 1, 7, size - 1, size + 1, size * 2, 4095])
        d = rnd.choice([3, 3, 3, 1, 2, 0])
        req = bytearray(rnd.getrandbits(8) for _ in range(max(size, 8)))
        # Plausible values in the 32- and 64-bit fields now and then.
        for off in range(0, len(req) - 8, 8):
            r = rnd.random()
            if r < 0.25:
                struct.pack_into("=Q", req, off, rnd.choice(ptrs))
            elif r < 0.5:
                struct.pack_into("=II", req, off, rnd.choice([0, 1, 2, 3, 64, 65535, 1 << 20, 2**32 - 1]),
                                 rnd.choice([0, 1, 2, 16, 4096, 2**31, 2**32 - 1]))
        if nr == U.ioc("LOAD") & 0xff and rnd.random() < 0.3:
            continue  # loads are covered by the fault and garbage tests; keep this fast
        if nr == U.ioc("TEST_RUN") & 0xff and len(req) >= U.size("test_run"):
            repeat = dict((f, (o, z)) for f, o, z in U.structs["test_run"]["fields"])["repeat"][0]
            struct.pack_into("=I", req, repeat, rnd.choice([1, 2, 100]))  # small repeat counts
        try:
            fcntl.ioctl(fd, (d << 30) | (size << 16) | (0xF7 << 8) | nr, req)
            ok += 1
        except OSError as e:
            counts[e.errno] += 1
    print("calls", done, "ok", ok, "errnos", ",".join("%d:%d" % kv for kv in sorted(counts.items())))

def mutate(rnd, b):
    b = bytearray(b)
    for _ in range(rnd.choice([1, 1, 2, 4, 8])):
        k, i = rnd.randrange(6), rnd.randrange(max(len(b), 1))
        if k == 0 and b:
            b[i] ^= 1 << rnd.randrange(8)                       # bit flip
        elif k == 1 and b:
            b[i] = rnd.choice([0, 0xff, 0x7f, 0x80, rnd.randrange(256)])  # interesting byte
        elif k == 2:
            b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 9)))  # insert
        elif k == 3 and b:
            del b[i:i + rnd.randrange(1, 17)]                   # delete
        elif k == 4 and len(b) > 8:
            j = rnd.randrange(len(b)); n = rnd.randrange(1, 33)  # copy a chunk elsewhere
            b[i:i + n] = b[j:j + n]
        elif k == 5 and len(b) > 8:
            del b[rnd.randrange(8, len(b)):]                    # truncate
    return bytes(b)

def mutload(fd, n, seed, files):
    """Mutated filters through the module's load path, and the packet path
    for those that load: each must be refused with an errno or run
    contained (a verdict, maybe the fault verdict)."""
    rnd = random.Random(seed)
    pkts = [bytes.fromhex("4500005400010000400100000a0000010a000002080000000001000100000000"),
            bytes.fromhex("6000000000083a40fd000000000000000000000000000001fd00000000000000000000000000000280000000000100010000"),
            bytes(rnd.randrange(256) for _ in range(64))]
    refused = loaded = ran = done = 0
    errs = collections.Counter()
    deadline = budget_deadline()
    for done in range(1, n + 1):
        if time.monotonic() > deadline:
            done -= 1
            break
        m = mutate(rnd, rnd.choice(files))
        fid, x, err = load(fd, m, 20000, rnd.randrange(2))
        if fid is None:
            refused += 1
            errs[x] += 1
            continue
        loaded += 1
        for p in pkts:
            test_run(fd, fid, p, 1, 2)
            ran += 1
        unload_id(fd, fid)
    print("mutants", done, "refused", refused, "loaded", loaded, "ran", ran,
          "errnos", ",".join("%d:%d" % kv for kv in sorted(errs.items())))

def loadloop(fd, wasm, secs):
    """Loads and unloads `wasm` back to back for `secs` seconds; prints how
    many loads and the longest one (t_rtnl.sh: rtnl meanwhile)."""
    end, n, longest = time.monotonic() + secs, 0, 0.0
    while time.monotonic() < end:
        t = time.monotonic()
        fid, x, err = load(fd, wasm)
        longest = max(longest, time.monotonic() - t)
        if fid is None:
            sys.exit("loadloop: load refused: errno %s %s" % (x, err))
        unload_id(fd, fid)
        n += 1
    print("loads", n, "longest %.3f" % longest)

def faultload(fd, wasm, stride):
    def setp(name, v):
        with open(PARAMS + name, "w") as f:
            f.write(str(v))
    setp("fail_load_alloc_nth", 0)
    fid, _, err = load(fd, wasm)
    if fid is None:
        sys.exit("faultload: the module does not load without faults: " + str(err))
    allocs = int(open(PARAMS + "load_allocs").read())
    unload_id(fd, fid)
    loads = okn = enomem = other = 0
    msgs = collections.Counter()
    for nth in range(1, allocs + 1, stride):
        setp("fail_load_alloc_nth", nth)
        fid, x, err = load(fd, wasm)
        loads += 1
        if fid is not None:
            okn += 1
            unload_id(fd, fid)
        elif x == 12:
            enomem += 1
        else:
            other += 1
            msgs[err] += 1
    setp("fail_load_alloc_nth", 0)
    print("allocs", allocs, "loads", loads, "ok", okn, "enomem", enomem, "other", other)
    for m, c in msgs.most_common(5):
        print("  other:", c, m)

main()
