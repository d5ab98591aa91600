/*
 * ferry/list.h - the intrusive doubly linked list every ferry module uses.
 *
 * Internal to ferry (the ferry__ prefix): it is installed only because
 * public structs embed a struct ferry__link. A list is a head node whose
 * prev/next point at itself when empty; unlinking needs no head, so an
 * element can leave whichever list it is on. An element that is on no
 * list has NULL links (zero-initialised memory qualifies).
 */
#ifndef FERRY_LIST_H
#define FERRY_LIST_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The struct that embeds @ptr as its @member. */
#define ferry__container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct ferry__link {
	struct ferry__link *prev, *next;
};

static inline void ferry__list_init(struct ferry__link *head)
{
	head->prev = head->next = head;
}

static inline bool ferry__list_empty(const struct ferry__link *head)
{
	return head->next == head;
}

/* Is element @n on a list? */
static inline bool ferry__linked(const struct ferry__link *n)
{
	return n->next != NULL;
}

static inline void ferry__list_add_tail(struct ferry__link *head,
					struct ferry__link *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void ferry__list_add_head(struct ferry__link *head,
					struct ferry__link *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}

/* Unlink @n from its list; a no-op when it is on none. */
static inline void ferry__list_del(struct ferry__link *n)
{
	if (!n->next)
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

/* Move every element of @from onto the empty head @to; @from ends empty. */
static inline void ferry__list_move_all(struct ferry__link *to,
					struct ferry__link *from)
{
	ferry__list_init(to);
	if (ferry__list_empty(from))
		return;
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	ferry__list_init(from);
}

#ifdef __cplusplus
}
#endif

#endif /* FERRY_LIST_H */
