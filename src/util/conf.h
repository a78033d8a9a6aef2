/*
 * conf.h - configuration: "key = value" files overridden by flags.
 *
 * Format: one "key = value" per line; '#' starts a comment; blank lines are
 * ignored; keys are [a-z0-9_.-]+; values are trimmed; a later line for the
 * same key wins. Typed getters return the default when the key is absent and
 * -EINVAL (with a message naming key and value through q_conf_error) when it
 * is present but malformed. q_conf_check_known() rejects unknown keys, so a
 * typo in a config file is an error, not a silently ignored line.
 *
 * Ownership: a q_conf owns copies of every key and value; free with
 * q_conf_free(). Strings returned by q_conf_get() live until the key is set
 * again or the conf is freed. Thread safety: none.
 */
#ifndef Q_CONF_H
#define Q_CONF_H

#include <stddef.h>
#include <stdint.h>

typedef struct q_conf q_conf;

q_conf *q_conf_new(void);
void q_conf_free(q_conf *c);
/* Parses text into c (adding to what it holds). On error returns -EINVAL and
 * describes the first bad line in q_conf_error(c). */
int q_conf_parse(q_conf *c, const char *text, size_t n);
int q_conf_load(q_conf *c, const char *path);
int q_conf_set(q_conf *c, const char *key, const char *value);
/* "key=value" as given on a command line (-o key=value). */
int q_conf_set_kv(q_conf *c, const char *kv);
const char *q_conf_get(const q_conf *c, const char *key);
const char *q_conf_get_str(const q_conf *c, const char *key, const char *def);
int q_conf_get_u64(q_conf *c, const char *key, uint64_t def, uint64_t *out);
int q_conf_get_bool(q_conf *c, const char *key, int def, int *out);
int q_conf_get_size(q_conf *c, const char *key, uint64_t def, uint64_t *out);
int q_conf_get_ms(q_conf *c, const char *key, uint64_t def, uint64_t *out);
/* known: NULL-terminated list of accepted keys. */
int q_conf_check_known(q_conf *c, const char *const *known);
const char *q_conf_error(const q_conf *c);
size_t q_conf_count(const q_conf *c);
/* i-th entry, in insertion order, for dumping. */
void q_conf_entry(const q_conf *c, size_t i, const char **key, const char **value);

#endif
