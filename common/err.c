/* err: messages and names for the mb_err codes. */
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *mb_strerror(int code)
{
	switch (code) {
#define MB_ERR_MSG(name, num, msg) \
	case num:                  \
		return msg;
		MB_ERR_MAP(MB_ERR_MSG)
#undef MB_ERR_MSG
	}
	return "unknown error";
}

const char *mb_errname(int code)
{
	switch (code) {
#define MB_ERR_NAME(name, num, msg) \
	case num:                   \
		return #name;
		MB_ERR_MAP(MB_ERR_NAME)
#undef MB_ERR_NAME
	}
	return "MB_UNKNOWN";
}

int mb_err_from_errno(int e)
{
	switch (e) {
	case 0:
		return MB_OK;
	case ENOMEM:
		return MB_ENOMEM;
	case EINVAL:
		return MB_EINVAL;
	case ENOENT:
	case ENOTDIR:
		return MB_ENOENT;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return MB_ENOSPC;
	case EEXIST:
		return MB_EEXIST;
	case EACCES:
	case EPERM:
	case EROFS:
		return MB_EPERM;
	case ETIMEDOUT:
		return MB_ETIMEDOUT;
	case EBUSY:
		return MB_EBUSY;
	case ECONNRESET:
	case ECONNREFUSED:
	case EPIPE:
	case ENETUNREACH:
	case EHOSTUNREACH:
		return MB_ENETWORK;
	default:
		return MB_EIO;
	}
}

void mb_seterr(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

int mb_err_transient(int code)
{
	return code == MB_ENETWORK || code == MB_ETIMEDOUT || code == MB_ENOMEM ||
	       code == MB_EIO || code == MB_EINTERNAL;
}

int mb_err_exit(int code)
{
	return code == 0 ? 0 : mb_err_transient(code) ? 1 : 3;
}
