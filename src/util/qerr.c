/*
 * qerr.c - messages for the project's error codes (see qerr.h).
 */
#include "util/qerr.h"

#include <string.h>

static const struct {
	int code;
	const char *name;
	const char *msg;
} q_errtab[] = {
	{Q_ECORRUPT, "ECORRUPT", "stored data is corrupt (checksum mismatch)"},
	{Q_ENOTFOUND, "ENOTFOUND", "not found"},
	{Q_ETOOBIG, "ETOOBIG", "key, value or message too large"},
	{Q_EQUORUM, "EQUORUM", "not enough replicas available"},
	{Q_ETIMEOUT, "ETIMEOUT", "request timed out"},
	{Q_EBADCTX, "EBADCTX", "bad causal context"},
	{Q_EPROTO, "EPROTO", "malformed message"},
	{Q_ETRUNC, "ETRUNC", "input truncated"},
	{Q_EVERSION, "EVERSION", "unsupported format or protocol version"},
	{Q_ECLOSED, "ECLOSED", "already closed"},
	{Q_EBUSY, "EBUSY", "resource busy"},
	{Q_EINJECT, "EINJECT", "injected failure"},
	{Q_EAUTH, "EAUTH", "authentication failed"},
};

const char *q_strerror(int code)
{
	if (code == 0)
		return "success";
	for (size_t i = 0; i < sizeof(q_errtab) / sizeof(q_errtab[0]); i++)
		if (q_errtab[i].code == code)
			return q_errtab[i].msg;
	if (code < 0 && code > Q_ERRBASE)
		return strerror(-code);
	return "unknown error";
}

const char *q_errname(int code)
{
	if (code == 0)
		return "OK";
	for (size_t i = 0; i < sizeof(q_errtab) / sizeof(q_errtab[0]); i++)
		if (q_errtab[i].code == code)
			return q_errtab[i].name;
	if (code < 0 && code > Q_ERRBASE) {
		const char *n = strerrorname_np(-code);
		return n ? n : "ERRNO";
	}
	return "EUNKNOWN";
}
