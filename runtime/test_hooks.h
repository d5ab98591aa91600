/*
 * runtime/test_hooks.h - internal entry points for the runtime's own tests.
 *
 * Not installed and not part of the API: each one lets a test reach a state
 * that would otherwise take too long (2^31 timer starts) or a kernel event
 * it cannot cause from outside (the doorbell's poll ending). Loop thread
 * only, like everything in runtime/.
 */
#ifndef FERRY_RUNTIME_TEST_HOOKS_H
#define FERRY_RUNTIME_TEST_HOOKS_H

#include <stdint.h>

struct ferry_loop;
struct ferry_op;
struct ferry_bufring;

/* Set the next timer start number (timer.c). Timers started before and
 * after the jump compare as if @seq - old starts had happened between. */
void ferry__timer_seq_set(struct ferry_loop *loop, uint64_t seq);

/* The doorbell's multishot poll op, e.g. for ferry_op_cancel() to end it
 * the way an error from the kernel would (loop.c). */
struct ferry_op *ferry__loop_bell_op(struct ferry_loop *loop);

/* How many receives into @br filled more than one buffer (a bundle,
 * FERRY_FEAT_RECV_BUNDLE) since it was created (bufring.c). */
unsigned ferry__bufring_bundles(const struct ferry_bufring *br);

#endif /* FERRY_RUNTIME_TEST_HOOKS_H */
