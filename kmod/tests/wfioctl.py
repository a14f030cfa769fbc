#!/usr/bin/env python3
"""Raw ioctls on /dev/wasmfw (wasmfw_uapi.h, uapi v3), bypassing the wasmfw
CLI's own checks, so the module's own answers are what gets tested.

    wfioctl.py load FILE.wasm [fuel] [on_fault]  "id <n> stack <bytes>" or "errno <e> <err text>"
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
    wfioctl.py fuzz N SEED                malformed ioctls (every number, random sizes and
                                          fields): "calls <n> ok <k> errnos <e:count,...>"
    wfioctl.py mutload N SEED FILE.wasm...  N byte-level mutants of the files (seeded): each is
                                          loaded, run once on 3 packets if it loads, unloaded:
                                          "mutants <n> refused <r> loaded <l> ran <k> errnos <e:count,...>"
    wfioctl.py faultload FILE.wasm STRIDE the allocator hook fails the Nth allocation of a
                                          load, for N = 1, 1+STRIDE, ... up to the allocations a
                                          load makes: "allocs <a> loads <l> ok <k> enomem <m> other <o>"
"""
import collections, ctypes, fcntl, os, random, struct, sys, time

def ioc(d, nr, size):
    return (d << 30) | (size << 16) | (0xF7 << 8) | nr

LOAD_FMT = "=QQIIQQII32s128sQII"  # struct wasmfw_load, 224 bytes
assert struct.calcsize(LOAD_FMT) == 224
INFO_FMT = "=IIII16s32s128sQQQ"   # struct wasmfw_info, 216 bytes (uapi v2)
assert struct.calcsize(INFO_FMT) == 216
LIST_FMT = "=QII"                 # struct wasmfw_list
MAPOP_FMT = "=II32sQQIIiI"        # struct wasmfw_map_op, 72 bytes
assert struct.calcsize(MAPOP_FMT) == 72
DUMP_FMT = "=II32sQQQ"            # struct wasmfw_map_dump, 64 bytes (uapi v3: cursor)
assert struct.calcsize(DUMP_FMT) == 64
TESTRUN_FMT = "=IIQIIIIQ"         # struct wasmfw_test_run, 40 bytes
assert struct.calcsize(TESTRUN_FMT) == 40
IOC_VERSION = ioc(2, 0, 4)
IOC_LOAD = ioc(3, 1, 224)
IOC_ATTACH = ioc(1, 2, 24)
IOC_DETACH = ioc(1, 3, 16)
IOC_UNLOAD = ioc(1, 4, 8)
IOC_LIST = ioc(3, 5, 16)
IOC_COUNTERS = ioc(3, 6, 24)
IOC_MAPS = ioc(3, 7, 24)
IOC_MAP_OP = ioc(3, 8, 72)
IOC_MAP_DUMP = ioc(3, 9, 64)
IOC_TEST_RUN = ioc(3, 10, 40)
PARAMS = "/sys/module/wasmfw/parameters/"

def load(fd, wasm, fuel=20000, on_fault=0):
    wbuf = ctypes.create_string_buffer(wasm, len(wasm) or 1)
    ebuf = ctypes.create_string_buffer(256)
    req = bytearray(struct.pack(LOAD_FMT, ctypes.addressof(wbuf), 0, len(wasm), 0, fuel, 131072, on_fault, 0,
                                b"raw", b"", ctypes.addressof(ebuf), 256, 0))
    try:
        fcntl.ioctl(fd, IOC_LOAD, req)
    except OSError as e:
        return None, e.errno, ebuf.value.decode(errors="replace")
    f = struct.unpack(LOAD_FMT, req)
    return f[7], f[12], None

def map_op(fd, fid, name, op, key, value=b""):
    kb = ctypes.create_string_buffer(key, len(key) or 1)
    vb = ctypes.create_string_buffer(value, len(value) or 1)
    req = bytearray(struct.pack(MAPOP_FMT, fid, op, name.encode(), ctypes.addressof(kb), ctypes.addressof(vb),
                                len(key), len(value), 0, 0))
    fcntl.ioctl(fd, IOC_MAP_OP, req)
    return struct.unpack(MAPOP_FMT, req)[7]

def map_dump(fd, fid, name, cap):
    """Every page of a map: (records, pages, bytes)."""
    buf = ctypes.create_string_buffer(cap)
    cursor, pages, total = 0, 0, 0
    while True:
        req = bytearray(struct.pack(DUMP_FMT, fid, cursor, name.encode(), ctypes.addressof(buf), cap, 0))
        fcntl.ioctl(fd, IOC_MAP_DUMP, req)
        _, cursor, _, _, _, n = struct.unpack(DUMP_FMT, req)
        pages += 1
        total += n
        if cursor == 0:
            return pages, total

def main():
    fd = os.open("/dev/wasmfw", os.O_RDWR)
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "load":
        fid, x, err = load(fd, open(a[0], "rb").read(), int(a[1]) if len(a) > 1 else 20000,
                           int(a[2]) if len(a) > 2 else 0)
        print("errno", x, err) if fid is None else print("id", fid, "stack", x)
    elif cmd == "unload":
        fcntl.ioctl(fd, IOC_UNLOAD, struct.pack("=II", int(a[0]), 0))
        print("unloaded")
    elif cmd == "attach":
        try:
            fcntl.ioctl(fd, IOC_ATTACH, struct.pack("=II16s", int(a[0]), int(a[1]), a[2].encode()))
            print("attached")
        except OSError as e:
            print("errno", e.errno)
    elif cmd == "detach":
        try:
            fcntl.ioctl(fd, IOC_DETACH, struct.pack("16s", a[0].encode()))
            print("detached")
        except OSError as e:
            print("errno", e.errno)
    elif cmd == "listtime":
        buf = ctypes.create_string_buffer(64 * 216)
        req = bytearray(struct.pack(LIST_FMT, ctypes.addressof(buf), 64, 0))
        t0 = time.monotonic()
        fcntl.ioctl(fd, IOC_LIST, req)
        print("%.3f" % (time.monotonic() - t0))
    elif cmd == "list":
        cap = 64
        buf = ctypes.create_string_buffer(cap * 216)
        req = bytearray(struct.pack(LIST_FMT, ctypes.addressof(buf), cap, 0))
        fcntl.ioctl(fd, IOC_LIST, req)
        count = struct.unpack(LIST_FMT, req)[2]
        for i in range(min(count, cap)):
            f = struct.unpack_from(INFO_FMT, buf.raw, i * 216)
            print("id", f[0], "hook", f[1], "ifindex", f[2], "netns", f[9],
                  "name", f[5].split(b"\0")[0].decode(errors="replace"))
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
        pkt = bytes.fromhex(a[1])
        pb = ctypes.create_string_buffer(pkt, len(pkt) or 1)
        req = bytearray(struct.pack(TESTRUN_FMT, int(a[0]), int(a[3]) if len(a) > 3 else 2, ctypes.addressof(pb),
                                    len(pkt), int(a[2]), 0, 0, 0))
        try:
            fcntl.ioctl(fd, IOC_TEST_RUN, req)
        except OSError as e:
            print("errno", e.errno)
            return
        f = struct.unpack(TESTRUN_FMT, req)
        print("verdict", f[5], "ns", f[7])
    elif cmd == "fuzz":
        fuzz(fd, int(a[0]), int(a[1]))
    elif cmd == "mutload":
        mutload(fd, int(a[0]), int(a[1]), [open(p, "rb").read() for p in a[2:]])
    elif cmd == "faultload":
        faultload(fd, open(a[0], "rb").read(), int(a[1]))
    else:
        sys.exit("unknown command " + cmd)

def fuzz(fd, n, seed):
    """Random requests for every ioctl number: right and wrong sizes and
    directions, random ids/lengths/indices/pointers (into a valid buffer,
    NULL, or unmapped). The module must answer each with an errno or a
    well-formed success; filters it loads are unloaded at the end."""
    rnd = random.Random(seed)
    sizes = {0: 4, 1: 224, 2: 24, 3: 16, 4: 8, 5: 16, 6: 24, 7: 24, 8: 72, 9: 64, 10: 40}
    scratch = ctypes.create_string_buffer(1 << 16)
    base = ctypes.addressof(scratch)
    ptrs = [0, base, base + 1, base + (1 << 16) - 8, 0xdead0000, 1 << 47, (1 << 64) - 4096]
    counts, ok = collections.Counter(), 0
    for i in range(n):
        nr = rnd.choice(list(sizes) + [11, 12, 255])
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
        if nr == 1 and rnd.random() < 0.3:
            continue  # loads are covered by the fault and garbage tests; keep this fast
        if nr == 10 and len(req) >= 24:
            struct.pack_into("=I", req, 20, rnd.choice([1, 2, 100]))  # small repeat counts
        try:
            fcntl.ioctl(fd, ioc(d, nr, size), req)
            ok += 1
        except OSError as e:
            counts[e.errno] += 1
    print("calls", n, "ok", ok, "errnos", ",".join("%d:%d" % kv for kv in sorted(counts.items())))

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
    refused = loaded = ran = 0
    errs = collections.Counter()
    for i in range(n):
        m = mutate(rnd, rnd.choice(files))
        fid, x, err = load(fd, m, 20000, rnd.randrange(2))
        if fid is None:
            refused += 1
            errs[x] += 1
            continue
        loaded += 1
        for p in pkts:
            pb = ctypes.create_string_buffer(p, len(p))
            req = bytearray(struct.pack(TESTRUN_FMT, fid, 2, ctypes.addressof(pb), len(p), 1, 0, 0, 0))
            fcntl.ioctl(fd, IOC_TEST_RUN, req)
            ran += 1
        fcntl.ioctl(fd, IOC_UNLOAD, struct.pack("=II", fid, 0))
    print("mutants", n, "refused", refused, "loaded", loaded, "ran", ran,
          "errnos", ",".join("%d:%d" % kv for kv in sorted(errs.items())))

def faultload(fd, wasm, stride):
    def setp(name, v):
        with open(PARAMS + name, "w") as f:
            f.write(str(v))
    setp("fail_load_alloc_nth", 0)
    fid, _, err = load(fd, wasm)
    if fid is None:
        sys.exit("faultload: the module does not load without faults: " + str(err))
    allocs = int(open(PARAMS + "load_allocs").read())
    fcntl.ioctl(fd, IOC_UNLOAD, struct.pack("=II", fid, 0))
    loads = okn = enomem = other = 0
    msgs = collections.Counter()
    for nth in range(1, allocs + 1, stride):
        setp("fail_load_alloc_nth", nth)
        fid, x, err = load(fd, wasm)
        loads += 1
        if fid is not None:
            okn += 1
            fcntl.ioctl(fd, IOC_UNLOAD, struct.pack("=II", fid, 0))
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
