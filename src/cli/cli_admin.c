/*
 * cli_admin.c - `quorumctl leave`: decommission a node.
 *
 *   quorumctl [--node ADDR] leave [--id NODE_ID]
 *
 * Without --id the node at ADDR leaves; with it, the node at ADDR passes the
 * request to that member (or, if the member is down, removes it from the
 * cluster). The answer is printed; the handoff itself runs in the
 * background and its progress shows in `quorumctl status` under "handoff"
 * (the leaving node stops itself when done unless leave_exit = false).
 * `--node ID` after the command is accepted as a synonym of --id.
 *
 * Threading: single-threaded; one blocking connection (net_sync).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "handoff/handoff_msg.h"
#include "net/net_msg.h"
#include "net/net_proto.h"
#include "net/net_sync.h"
#include "util/buf.h"
#include "util/qerr.h"

int cli_leave(int argc, char **argv, const char *node, uint64_t timeout_ms, int json)
{
	const char *id = "";
	for (int i = 0; i < argc; i++) {
		if ((!strcmp(argv[i], "--id") || !strcmp(argv[i], "--node")) && i + 1 < argc) {
			id = argv[++i];
		} else {
			fprintf(stderr, "quorumctl: usage: leave [--id NODE_ID]\n");
			return CLI_EXIT_USAGE;
		}
	}
	if (strlen(id) > HANDOFF_ID_MAX) {
		fprintf(stderr, "quorumctl: node id longer than %u bytes\n", HANDOFF_ID_MAX);
		return CLI_EXIT_USAGE;
	}
	q_buf req = Q_BUF_INIT, rb = Q_BUF_INIT;
	net_sync *s = NULL;
	net_msg resp;
	net_msg_init(&resp, NET_MSG_NONE);
	int code = CLI_EXIT_ERROR;
	int rc = handoff_leave_encode(q_slice_str(id), &req);
	if (rc < 0)
		goto fail;
	rc = net_sync_connect(node, timeout_ms, &s);
	if (rc < 0) {
		fprintf(stderr, "quorumctl: cannot connect to %s: %s\n", node, q_strerror(rc));
		code = rc == -EINVAL ? CLI_EXIT_USAGE : cli_exit_code(rc);
		goto out;
	}
	net_msg m;
	net_msg_init(&m, NET_MSG_LEAVE);
	m.u.gossip.payload = q_buf_slice(&req);
	rc = net_sync_call(s, &m, timeout_ms, &resp, &rb);
	if (rc != 0) {
		if (rc > 0 || resp.type == NET_MSG_ERROR)
			fprintf(stderr, "quorumctl: leave: %s: %.*s\n", q_strerror(rc),
				(int)resp.u.error.text.n, (const char *)resp.u.error.text.p);
		else
			fprintf(stderr, "quorumctl: leave: %s%s\n", q_strerror(rc), cli_closed_hint(rc));
		code = cli_exit_code(rc);
		goto out;
	}
	q_slice text;
	rc = handoff_leave_resp_decode(resp.u.gossip.payload.p, resp.u.gossip.payload.n, &text);
	if (rc < 0)
		goto fail;
	if (json) {
		printf("{\"ok\":true,\"node\":");
		cli_json_str(stdout, (const uint8_t *)id, strlen(id));
		printf(",\"answer\":");
		cli_json_str(stdout, text.p, text.n);
		printf("}\n");
	} else {
		printf("%.*s\n", (int)text.n, (const char *)text.p);
	}
	code = CLI_EXIT_OK;
	goto out;
fail:
	fprintf(stderr, "quorumctl: leave: %s%s\n", q_strerror(rc), cli_closed_hint(rc));
	code = cli_exit_code(rc);
out:
	net_msg_clear(&resp);
	q_buf_free(&rb);
	q_buf_free(&req);
	net_sync_close(s);
	return code;
}
