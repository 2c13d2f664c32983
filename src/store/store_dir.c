/* Creating a store's directory (STRATA_STORE_CREATE), and removing it again
 * when the open that created it fails, so that a failed open leaves the file
 * system as it was. Only the last component is created: a missing parent is
 * more often a typo than a wish, and mkdir -p semantics would leave a trail
 * of directories behind a failure. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "store/store_internal.h"
#include "store/store_shm.h"

int strata__store_mkdir(const char *dir, bool *created) {
  *created = false;
  /* 0755 less the umask: the store's files are written by its one owner,
   * and a directory others may write into is warned about at open. */
  if (mkdir(dir, 0755) == 0) {
    *created = true;
    return 0;
  }
  int e = errno;
  struct stat st;
  if (e == EEXIST) {
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
      return 0; /* already there: opened as it is */
    if (stat(dir, &st) != 0 && lstat(dir, &st) != 0)
      return strata__fail_errno(errno, "%s: checking the store directory", dir);
    return strata__fail_errno(ENOTDIR,
                              "%s: cannot create the store directory: the "
                              "path exists and is %s",
                              dir, strata__file_type_name(st.st_mode));
  }
  if (e == ENOENT)
    return strata__fail_errno(ENOENT,
                              "%s: cannot create the store directory: its "
                              "parent directory does not exist "
                              "(STRATA_STORE_CREATE creates only the last "
                              "component)",
                              dir);
  return strata__fail_errno(e, "%s: creating the store directory", dir);
}

void strata__store_unmake_dir(const char *dir) {
  /* What open may have put there: the lock file of its brief cleanup
   * lock and the shared view file it registered in (its slot is released
   * by then). Anything else (another process's file) keeps the directory. */
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    unlinkat(fd, STRATA__LOCK_FILE, 0);
    unlinkat(fd, STRATA__SHM_FILE, 0);
    close(fd);
  }
  rmdir(dir);
}
