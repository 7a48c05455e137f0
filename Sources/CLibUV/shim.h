#ifndef CRDTD_CLIBUV_SHIM_H
#define CRDTD_CLIBUV_SHIM_H
#include <uv.h>
#include <signal.h>

/* uv_thread_t is pthread_t, whose representation differs between platforms; an integer is enough to compare. */
static inline unsigned long crdtd_uv_current_thread_id(void) {
    return (unsigned long)uv_thread_self();
}

/* SIG_IGN is a cast macro that Swift does not import. */
static inline void crdtd_ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
}

#endif
