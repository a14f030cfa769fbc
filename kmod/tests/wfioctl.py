#!/usr/bin/env python3
"""Raw WASMFW_IOC_LOAD / UNLOAD on /dev/wasmfw (wasmfw_uapi.h), bypassing the
wasmfw CLI's own checks, so the module's refusal is what gets tested.

    wfioctl.py load FILE.wasm [fuel]   prints "id <n> stack <bytes>" or "errno <e> <err text>"
    wfioctl.py unload ID
    wfioctl.py list                    one line per filter: "id <n> hook <h> ifindex <i> netns <ino> name <s>"
"""
import ctypes, fcntl, os, struct, sys

def ioc(d, nr, size):
    return (d << 30) | (size << 16) | (0xF7 << 8) | nr

LOAD_FMT = "=QQIIQQII32s128sQII"  # struct wasmfw_load, 224 bytes
assert struct.calcsize(LOAD_FMT) == 224
IOC_LOAD = ioc(3, 1, 224)
IOC_UNLOAD = ioc(1, 4, 8)
INFO_FMT = "=IIII16s32s128sQQQ"  # struct wasmfw_info, 216 bytes (uapi v2)
assert struct.calcsize(INFO_FMT) == 216
LIST_FMT = "=QII"                 # struct wasmfw_list
IOC_LIST = ioc(3, 5, 16)

def main():
    fd = os.open("/dev/wasmfw", os.O_RDWR)
    if sys.argv[1] == "load":
        wasm = open(sys.argv[2], "rb").read()
        fuel = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
        wbuf = ctypes.create_string_buffer(wasm, len(wasm) or 1)
        ebuf = ctypes.create_string_buffer(256)
        req = bytearray(struct.pack(LOAD_FMT, ctypes.addressof(wbuf), 0, len(wasm), 0, fuel, 131072, 0, 0,
                                    b"raw", b"", ctypes.addressof(ebuf), 256, 0))
        try:
            fcntl.ioctl(fd, IOC_LOAD, req)
        except OSError as e:
            print("errno", e.errno, ebuf.value.decode(errors="replace"))
            return
        f = struct.unpack(LOAD_FMT, req)
        print("id", f[7], "stack", f[12])
    elif sys.argv[1] == "unload":
        fcntl.ioctl(fd, IOC_UNLOAD, struct.pack("=II", int(sys.argv[2]), 0))
        print("unloaded")
    elif sys.argv[1] == "list":
        cap = 64
        buf = ctypes.create_string_buffer(cap * 216)
        req = bytearray(struct.pack(LIST_FMT, ctypes.addressof(buf), cap, 0))
        fcntl.ioctl(fd, IOC_LIST, req)
        count = struct.unpack(LIST_FMT, req)[2]
        for i in range(min(count, cap)):
            f = struct.unpack_from(INFO_FMT, buf.raw, i * 216)
            print("id", f[0], "hook", f[1], "ifindex", f[2], "netns", f[9],
                  "name", f[5].split(b"\0")[0].decode(errors="replace"))

main()
