/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * LD_PRELOAD shim for Debian's linux.uml (6.1) on hosts whose XSAVE area is
 * larger than UML's FP register buffer (Intel CPUs with AMX: ~11 KiB).
 *
 * UML saves a process's FP state with PTRACE_GETREGSET(NT_X86_XSTATE) into
 * a fixed buffer, which the host kernel fills partly; putting it back with
 * PTRACE_SETREGSET fails, because the host accepts only the whole XSAVE
 * area, and UML kills init ("Attempted to kill init", a SIGSEGV in
 * put_fp_registers). The shim completes a short SETREGSET: it reads the
 * child's whole area, lays UML's bytes over its start and writes it all.
 * The state beyond UML's buffer (AMX tiles, unused by anything UML runs)
 * stays as the child had it. Every other ptrace call goes through as is.
 *
 * Used by tests/py/uml.py only; nothing of the product links it.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef long (*ptrace_fn)(int, pid_t, void *, void *);

long ptrace(enum __ptrace_request req, ...);

static ptrace_fn
real_ptrace(void)
{
	static ptrace_fn fn;

	if (fn == NULL)
		fn = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
	return fn;
}

/* The child's whole XSAVE area, read into a buffer of @p cap bytes; its
 * size in @p len. */
static void *
whole_xstate(pid_t pid, size_t cap, size_t *len)
{
	struct iovec iov;
	void *buf = calloc(1, cap);

	if (buf == NULL)
		return NULL;
	iov.iov_base = buf;
	iov.iov_len = cap;
	if (real_ptrace()(PTRACE_GETREGSET, pid, (void *)(long)NT_X86_XSTATE, &iov) < 0) {
		free(buf);
		return NULL;
	}
	*len = iov.iov_len;
	return buf;
}

static long
set_xstate(pid_t pid, struct iovec *short_iov)
{
	enum { CAP = 1 << 16 };
	struct iovec iov;
	size_t len = 0;
	long rc;
	void *buf = whole_xstate(pid, CAP, &len);

	if (buf == NULL || len <= short_iov->iov_len) {
		free(buf);
		return real_ptrace()(PTRACE_SETREGSET, pid, (void *)(long)NT_X86_XSTATE,
				     short_iov);
	}
	memcpy(buf, short_iov->iov_base, short_iov->iov_len);
	iov.iov_base = buf;
	iov.iov_len = len;
	rc = real_ptrace()(PTRACE_SETREGSET, pid, (void *)(long)NT_X86_XSTATE, &iov);
	free(buf);
	return rc;
}

long
ptrace(enum __ptrace_request req, ...)
{
	va_list ap;
	pid_t pid;
	void *addr, *data;

	va_start(ap, req);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);
	if (req == PTRACE_SETREGSET && (long)addr == NT_X86_XSTATE && data != NULL)
		return set_xstate(pid, data);
	return real_ptrace()((int)req, pid, addr, data);
}
