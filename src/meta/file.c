/* file.c - the embedded metadata store in a directory of its own: an LMDB
 * environment holding only the "#meta" sub-database (embedded.c), for
 * stream backends that have no lmq env (nats, rocksdb). Several processes
 * may open the same directory: LMDB serializes their writers. */
#include "config.h"
#include "meta/meta.h"
#include "common/error.h"

#include <errno.h>
#include <lmdb.h>
#include <string.h>
#include <sys/stat.h>

#define FILE_MAP_SIZE (64u << 20) /* owner records are small */

int lmq__meta_file_open(lmq_meta **out, void **env_out, const char *dir) {
  if (!out || !env_out || !dir || !*dir)
    return lmq__error(LMQ_EINVAL, "metadata file: NULL or empty directory");
  *out = NULL;
  *env_out = NULL;
  if (mkdir(dir, 0755) && errno != EEXIST)
    return lmq__error(lmq__errno_code(errno), "metadata file: mkdir '%.200s': %s", dir,
                      strerror(errno));
  MDB_env *env = NULL;
  int rc = mdb_env_create(&env);
  if (!rc)
    rc = mdb_env_set_maxdbs(env, 2);
  if (!rc)
    rc = mdb_env_set_mapsize(env, FILE_MAP_SIZE);
  if (!rc)
    rc = mdb_env_open(env, dir, MDB_NOTLS, 0644);
  if (rc) {
    int code = rc == ENOMEM ? LMQ_ENOMEM : LMQ_EIO;
    mdb_env_close(env);
    return lmq__error(code, "metadata file '%.200s': %s", dir, mdb_strerror(rc));
  }
  if ((rc = lmq__meta_embedded_open(out, env))) {
    mdb_env_close(env);
    return rc;
  }
  *env_out = env;
  return 0;
}

void lmq__meta_file_close(lmq_meta *m, void *env) {
  lmq_meta_close(m);
  if (env)
    mdb_env_close(env);
}
