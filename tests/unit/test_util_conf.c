/* Unit tests for src/util/conf.c. */
#include "qtest.h"
#include "util/conf.h"

QTEST(parse_file_text)
{
	q_conf *c = q_conf_new();
	const char *text = "# a comment\n"
			   "data_dir = /var/lib/quorum   \n"
			   "\n"
			   "  n=3 # replicas\n"
			   "sync = always\n"
			   "n = 5\n";
	ASSERT_OK(q_conf_parse(c, text, strlen(text)));
	ASSERT_STREQ(q_conf_get(c, "data_dir"), "/var/lib/quorum");
	uint64_t n;
	ASSERT_OK(q_conf_get_u64(c, "n", 3, &n));
	ASSERT_U64_EQ(n, 5); /* later line wins */
	ASSERT_OK(q_conf_get_u64(c, "r", 2, &n));
	ASSERT_U64_EQ(n, 2); /* default */
	ASSERT(q_conf_get(c, "missing") == NULL);
	ASSERT_STREQ(q_conf_get_str(c, "missing", "dflt"), "dflt");
	ASSERT_EQ(q_conf_count(c), 3);
	q_conf_free(c);
}

QTEST(errors_name_the_problem)
{
	q_conf *c = q_conf_new();
	const char *bad = "ok = 1\nthis line has no equals\n";
	ASSERT_EQ(q_conf_parse(c, bad, strlen(bad)), -EINVAL);
	ASSERT(strstr(q_conf_error(c), "line 2"));
	ASSERT_OK(q_conf_set(c, "w", "two"));
	uint64_t v;
	ASSERT_EQ(q_conf_get_u64(c, "w", 2, &v), -EINVAL);
	ASSERT(strstr(q_conf_error(c), "'w'"));
	ASSERT_OK(q_conf_set(c, "cache", "64k"));
	ASSERT_OK(q_conf_get_size(c, "cache", 0, &v));
	ASSERT_U64_EQ(v, 65536);
	ASSERT_OK(q_conf_set(c, "timeout", "2s"));
	ASSERT_OK(q_conf_get_ms(c, "timeout", 0, &v));
	ASSERT_U64_EQ(v, 2000);
	int b;
	ASSERT_OK(q_conf_set_kv(c, "fsync=yes"));
	ASSERT_OK(q_conf_get_bool(c, "fsync", 0, &b));
	ASSERT_EQ(b, 1);
	ASSERT_OK(q_conf_set_kv(c, "fsync=maybe"));
	ASSERT_EQ(q_conf_get_bool(c, "fsync", 0, &b), -EINVAL);
	ASSERT_EQ(q_conf_set_kv(c, "noequals"), -EINVAL);
	ASSERT_EQ(q_conf_set_kv(c, "Bad Key=1"), -EINVAL);
	const char *known[] = {"ok", "w", "cache", "timeout", NULL};
	ASSERT_EQ(q_conf_check_known(c, known), -EINVAL);
	ASSERT(strstr(q_conf_error(c), "unknown option 'fsync'"));
	q_conf_free(c);
}

QTEST(load_from_disk)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/q.conf", qtest_tmpdir);
	FILE *f = fopen(path, "w");
	ASSERT(f);
	fputs("listen = 127.0.0.1:7000\nzone=z1", f); /* no trailing newline */
	fclose(f);
	q_conf *c = q_conf_new();
	ASSERT_OK(q_conf_load(c, path));
	ASSERT_STREQ(q_conf_get(c, "listen"), "127.0.0.1:7000");
	ASSERT_STREQ(q_conf_get(c, "zone"), "z1");
	snprintf(path, sizeof(path), "%s/absent.conf", qtest_tmpdir);
	ASSERT_EQ(q_conf_load(c, path), -ENOENT);
	ASSERT(strstr(q_conf_error(c), "absent.conf"));
	q_conf_free(c);
}

QTEST_MAIN(QT(parse_file_text), QT(errors_name_the_problem), QT(load_from_disk))
