/* A minimal /init for boot tests: says INIT OK on the console and reboots (QEMU -no-reboot
 * turns that into an exit). Built static with musl-gcc. */
#include <fcntl.h>
#include <sys/reboot.h>
#include <unistd.h>

int main(void) {
    static const char msg[] = "INIT OK\n";
    int fd = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (fd < 0)
        fd = 1;
    if (write(fd, msg, sizeof msg - 1) < 0)
        return 1;
    sync();
    reboot(RB_AUTOBOOT);
    for (;;)
        pause();
}
