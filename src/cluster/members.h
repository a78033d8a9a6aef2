/*
 * members.h - the membership list the coordinator routes by.
 *
 * Membership is fed from outside: today from the static peer list in the
 * node's config and from HELLO handshakes (a peer named only by address is
 * learned when it answers); later by the gossip layer. Whatever feeds it
 * calls members_upsert / members_remove / members_set_state; the coordinator
 * only reads snapshots. Every change that alters the ring (a member added or
 * removed, a zone changed) bumps the ring version; state changes (up/down)
 * do not.
 *
 * Invariants: node ids are unique; the local node is always a member; every
 * member has an address ("host:port").
 *
 * Threading: all calls are thread-safe (one mutex). Snapshots are copies
 * owned by the caller (free with free()).
 */
#ifndef Q_MEMBERS_H
#define Q_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#define MEMBER_ID_MAX 63
#define MEMBER_ADDR_MAX 63

typedef enum member_state {
	MEMBER_UNKNOWN = 0, /* never contacted */
	MEMBER_UP = 1,      /* last contact succeeded */
	MEMBER_DOWN = 2     /* last contact failed */
} member_state;

typedef struct member {
	char id[MEMBER_ID_MAX + 1];
	char addr[MEMBER_ADDR_MAX + 1];
	char zone[MEMBER_ID_MAX + 1];
	member_state state;
	uint64_t state_since_ms; /* monotonic ms of the last state change */
	uint64_t failures;       /* failed contacts since the last success */
	int self;                /* 1 for the local node */
} member;

typedef struct members members;

/* The list starts with the local node only. */
int members_new(const char *self_id, const char *self_addr, const char *self_zone,
		members **out);
void members_free(members *m);

/* Adds a member or updates its address/zone (zone NULL or "": keep the
 * known zone; "default" for a new member). Returns 1 if the ring-relevant
 * view changed, 0 if not, or a negative code (-EINVAL for an empty/overlong
 * id or address). */
int members_upsert(members *m, const char *id, const char *addr, const char *zone);
/* Removes a member (never the local node): Q_ENOTFOUND if absent. */
int members_remove(members *m, const char *id);
/* Records the outcome of a contact with the member at addr. */
void members_set_state(members *m, const char *id, member_state st);

/* State of member id, or -1 if it is not a member. */
int members_state_of(members *m, const char *id);

size_t members_count(members *m);
/* Ring-relevant version: bumped by every change of ids or zones. */
uint64_t members_version(members *m);
/* Copy of the list (sorted by id); *out malloc'ed, caller frees. Also
 * returns the version the copy belongs to. */
int members_snapshot(members *m, member **out, size_t *n, uint64_t *version);

#endif
