/* Test for kmod/guest/patches/uml-xstate-runtime-size.patch (cargo xtask test
 * runs it on every host). Reproduces UML 6.12's FP sizing bug on any host:
 * a buffer smaller than the host's XSAVE area (as 6.12's 2696 bytes are
 * against AMX's 11008) is refused by PTRACE_SETREGSET with EFAULT; then
 * checks the patch's fix: SETREGSET through a host-sized scratch buffer with
 * the truncated components' xstate_bv bits cleared, registers kept. */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <elf.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/uio.h>
int main(void) {
	pid_t pid = fork();
	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		asm volatile("movq $0x1122334455667788, %%rax; movq %%rax, %%xmm3" ::: "rax", "xmm3");
		raise(SIGSTOP);
		unsigned long long v; asm volatile("movq %%xmm3, %0" : "=r"(v));
		_exit(v == 0xcafef00dcafef00dULL ? 0 : 1);
	}
	int st; waitpid(pid, &st, 0);
	static unsigned char big[1 << 20], small[1 << 16], scratch[1 << 16];
	struct iovec iov = { big, sizeof big };
	if (ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov)) { perror("get"); return 2; }
	size_t host = iov.iov_len;
	/* legacy area + header (576 bytes) at least: xmm3 and xstate_bv live there */
	size_t SMALL = host > 576 + 256 ? host - 256 : 576;
	if (host <= 576 || host > sizeof scratch) { printf("host XSAVE size %zu: nothing to check\n", host); return 0; }
	printf("host XSAVE size %zu, UML-like buffer %zu\n", host, SMALL);
	memcpy(small, big, SMALL);
	/* xmm3 is at 160 + 3*16 in the legacy area */
	unsigned long long nv = 0xcafef00dcafef00dULL; memcpy(small + 160 + 48, &nv, 8);
	iov = (struct iovec){ small, SMALL };
	int r = ptrace(PTRACE_SETREGSET, pid, NT_X86_XSTATE, &iov);
	int short_err = r ? errno : 0;
	printf("SETREGSET with the short buffer: %s (UML 6.12's failure: Bad address)\n", r ? strerror(errno) : "ok");
	memcpy(scratch, small, SMALL); memset(scratch + SMALL, 0, host - SMALL);
	unsigned long long bv; memcpy(&bv, scratch + 512, 8);
	for (int i = 2; i < 64; i++) {
		unsigned a, b, c, d;
		if (!(bv & (1ULL << i))) continue;
		asm volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(i));
		if (b + a > SMALL) { bv &= ~(1ULL << i); printf("component %d (offset %u size %u) -> init state\n", i, b, a); }
	}
	memcpy(scratch + 512, &bv, 8);
	iov = (struct iovec){ scratch, host };
	r = ptrace(PTRACE_SETREGSET, pid, NT_X86_XSTATE, &iov);
	printf("SETREGSET through the host-sized scratch: %s\n", r ? strerror(errno) : "ok");
	ptrace(PTRACE_CONT, pid, 0, 0); waitpid(pid, &st, 0);
	printf("child saw the xmm3 written through the scratch: %s\n", WEXITSTATUS(st) == 0 ? "yes" : "no");
	return short_err != EFAULT || r || WEXITSTATUS(st);
}
