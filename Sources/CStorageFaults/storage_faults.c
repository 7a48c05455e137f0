// An LD_PRELOAD shim that makes the writes and syncs of files under one directory fail or stall on
// demand, so tests can give a real crdtd a full disk, a failing fsync or a stalled disk.
//
//   CRDTD_FAULT_DIR      the directory whose files are affected, with a trailing slash (the data dir)
//   CRDTD_FAULT_CONTROL  a file whose first word says what to do, read at every affected call:
//     (empty, missing)   nothing: every call goes through
//     enospc | edquot    write, pwrite, pwrite64, writev and pwritev fail with ENOSPC or EDQUOT
//     eio-write          those writes fail with EIO
//     eio-fsync-once     the next fsync or fdatasync fails with EIO (the file then says eio-fsync-done)
//     stall              fsync and fdatasync wait while the file says stall
//     stall-writes       those writes, fsync and fdatasync all wait while the file says stall-writes (a
//                        stalled device: with durability normal most commits write without an fsync)
//
// Only regular files under CRDTD_FAULT_DIR are affected: sockets, pipes and the log never are.
// Built by SwiftPM as the dynamic library product crdtd-storage-faults (.build/debug/libcrdtd-storage-faults.so),
// beside crdtd and crdtctl; preloaded by `crdtctl check --faults disk` and Tests/IntegrationTests/StorageFaultTests.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum mode { NONE, ENOSPC_MODE, EDQUOT_MODE, EIO_WRITE, EIO_FSYNC_ONCE, STALL, STALL_WRITES };

static enum mode read_mode(void) {
    const char *control = getenv("CRDTD_FAULT_CONTROL");
    if (!control) return NONE;
    int fd = open(control, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NONE;
    char text[64] = {0};
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return NONE;
    if (strncmp(text, "enospc", 6) == 0) return ENOSPC_MODE;
    if (strncmp(text, "edquot", 6) == 0) return EDQUOT_MODE;
    if (strncmp(text, "eio-write", 9) == 0) return EIO_WRITE;
    if (strncmp(text, "eio-fsync-once", 14) == 0) return EIO_FSYNC_ONCE;
    if (strncmp(text, "stall-writes", 12) == 0) return STALL_WRITES;
    if (strncmp(text, "stall", 5) == 0) return STALL;
    return NONE;
}

/// Rewrites the control file, with the raw system call: `write` is ours.
static void set_control(const char *text) {
    const char *control = getenv("CRDTD_FAULT_CONTROL");
    if (!control) return;
    int fd = open(control, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return;
    (void)syscall(SYS_write, fd, text, strlen(text));
    close(fd);
}

/// Whether `fd` is a regular file under CRDTD_FAULT_DIR.
static int affected(int fd) {
    const char *dir = getenv("CRDTD_FAULT_DIR");
    if (!dir || !*dir) return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strncmp(path, dir, strlen(dir)) == 0;
}

static void pause_briefly(void) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

/// The errno a write to `fd` fails with now, or 0 to let it through; waits while writes are stalled.
static int write_fault(int fd) {
    if (!affected(fd)) return 0;
    for (;;) {
        switch (read_mode()) {
        case ENOSPC_MODE: return ENOSPC;
        case EDQUOT_MODE: return EDQUOT;
        case EIO_WRITE: return EIO;
        case STALL_WRITES: pause_briefly(); break;
        default: return 0;
        }
    }
}

/// The errno a sync of `fd` fails with now, or 0 to let it through; waits while stalled.
static int sync_fault(int fd) {
    if (!affected(fd)) return 0;
    for (;;) {
        enum mode mode = read_mode();
        if (mode == EIO_FSYNC_ONCE) {
            set_control("eio-fsync-done\n");
            return EIO;
        }
        if (mode != STALL && mode != STALL_WRITES) return 0;
        pause_briefly();
    }
}

#define NEXT(name) static __typeof__(&name) real; if (!real) real = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buffer, size_t count) {
    NEXT(write);
    int error = write_fault(fd);
    if (error) { errno = error; return -1; }
    return real(fd, buffer, count);
}

ssize_t pwrite(int fd, const void *buffer, size_t count, off_t offset) {
    NEXT(pwrite);
    int error = write_fault(fd);
    if (error) { errno = error; return -1; }
    return real(fd, buffer, count, offset);
}

ssize_t pwrite64(int fd, const void *buffer, size_t count, off64_t offset) {
    NEXT(pwrite64);
    int error = write_fault(fd);
    if (error) { errno = error; return -1; }
    return real(fd, buffer, count, offset);
}

ssize_t writev(int fd, const struct iovec *vector, int count) {
    NEXT(writev);
    int error = write_fault(fd);
    if (error) { errno = error; return -1; }
    return real(fd, vector, count);
}

ssize_t pwritev(int fd, const struct iovec *vector, int count, off_t offset) {
    NEXT(pwritev);
    int error = write_fault(fd);
    if (error) { errno = error; return -1; }
    return real(fd, vector, count, offset);
}

int fsync(int fd) {
    NEXT(fsync);
    int error = sync_fault(fd);
    if (error) { errno = error; return -1; }
    return real(fd);
}

int fdatasync(int fd) {
    NEXT(fdatasync);
    int error = sync_fault(fd);
    if (error) { errno = error; return -1; }
    return real(fd);
}
