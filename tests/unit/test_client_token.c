/*
 * test_client_token.c - context tokens and qc_object filling.
 */
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "object/obj.h"
#include "qtest.h"
#include "util/qerr.h"

QTEST(token_round_trip_all_lengths)
{
	uint8_t data[300];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 131 + 7);
	q_buf tok = Q_BUF_INIT, back = Q_BUF_INIT;
	for (size_t n = 0; n <= sizeof(data); n++) {
		ASSERT_OK(qc_ctx_to_token(q_slice_make(data, n), &tok));
		ASSERT_EQ(tok.len, (n * 4 + 2) / 3);
		ASSERT_EQ(strlen((const char *)tok.p), tok.len);
		for (size_t i = 0; i < tok.len; i++) {
			char ch = (char)tok.p[i];
			ASSERT((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			       (ch >= '0' && ch <= '9') || ch == '-' || ch == '_');
		}
		ASSERT_OK(qc_token_to_ctx((const char *)tok.p, &back));
		ASSERT_EQ(back.len, n);
		if (n)
			ASSERT_MEMEQ(back.p, data, n);
	}
	q_buf_free(&tok);
	q_buf_free(&back);
}

QTEST(token_rejects_bad_input)
{
	q_buf out = Q_BUF_INIT;
	ASSERT_EQ(qc_token_to_ctx("abc=", &out), Q_EBADCTX);  /* padding is not ours */
	ASSERT_EQ(qc_token_to_ctx("ab+c", &out), Q_EBADCTX);  /* standard alphabet */
	ASSERT_EQ(qc_token_to_ctx("ab c", &out), Q_EBADCTX);
	ASSERT_EQ(qc_token_to_ctx("abcde", &out), Q_EBADCTX); /* 5 chars: no encoding */
	ASSERT_EQ(qc_token_to_ctx("AB", &out), Q_EBADCTX);    /* non-zero spare bits */
	ASSERT_EQ(out.len, 0);
	ASSERT_OK(qc_token_to_ctx("AA", &out));
	ASSERT_EQ(out.len, 1);
	ASSERT_OK(qc_token_to_ctx("", &out));
	ASSERT_EQ(out.len, 0);
	q_buf_free(&out);
}

QTEST(object_from_set)
{
	obj_set *s1 = NULL, *s2 = NULL, *m = NULL;
	obj_write w1 = {0, q_slice_str("alpha"), NULL, 1000};
	obj_write w2 = {0, q_slice_str("beta!"), NULL, 2000};
	ASSERT_OK(obj_set_update(NULL, NULL, "n1", &w1, NULL, 1000, &s1));
	ASSERT_OK(obj_set_update(NULL, NULL, "n2", &w2, NULL, 2000, &s2));
	ASSERT_OK(obj_set_sync(s1, s2, &m));
	qc_object o;
	qc_object_init(&o);
	ASSERT_OK(qc_object_from_set(m, &o));
	ASSERT_EQ(o.nsib, 2);
	ASSERT_EQ(qc_object_live(&o), 2);
	/* newest first */
	ASSERT_STREQ(o.sib[0].node, "n2");
	ASSERT_U64_EQ(o.sib[0].wall_ns, 2000);
	ASSERT_EQ(o.sib[0].value.n, 5);
	ASSERT_MEMEQ(o.sib[0].value.p, "beta!", 5);
	ASSERT_STREQ(o.sib[1].node, "n1");
	ASSERT_MEMEQ(o.sib[1].value.p, "alpha", 5);
	ASSERT_U64_EQ(o.sib[1].counter, 1);
	/* the context decodes and covers both siblings */
	obj_ctx *ctx = NULL;
	ASSERT_OK(obj_ctx_decode(o.context.p, o.context.len, &ctx));
	ASSERT_EQ(obj_ctx_compare(ctx, obj_set_ctx(m)), OBJ_EQUAL);
	obj_ctx_free(ctx);
	/* a delete with that context leaves one tombstone, shown last */
	obj_set *d = NULL;
	obj_write del = {1, q_slice_make(NULL, 0), NULL, 3000};
	ASSERT_OK(obj_set_update(m, obj_set_ctx(m), "n1", &del, NULL, 3000, &d));
	ASSERT_OK(qc_object_from_set(d, &o)); /* refills: frees the old content */
	ASSERT_EQ(o.nsib, 1);
	ASSERT_EQ(o.sib[0].deleted, 1);
	ASSERT_EQ(qc_object_live(&o), 0);
	qc_object_free(&o);
	qc_object_free(&o); /* twice is fine */
	obj_set_free(s1);
	obj_set_free(s2);
	obj_set_free(m);
	obj_set_free(d);
}

QTEST_MAIN(QT(token_round_trip_all_lengths), QT(token_rejects_bad_input), QT(object_from_set))
