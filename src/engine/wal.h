/*
 * wal.h - the write-ahead log: record format (pure encode/decode, no I/O) and
 * segment files.
 *
 * A segment is DIR/wal/<16-digit number>.log, a sequence of records:
 *
 *   u32 magic 'LMQW' | u32 body_len | body | u64 xxh3(magic..body, seed)
 *
 * where seed is the segment's number. Segment files are recycled (an
 * applied segment is renamed to a future number and overwritten, which
 * makes fdatasync cheaper than appending); the seed makes the old
 * contents' records invalid, so the log still ends at the first record
 * that does not verify.
 *
 * all little-endian. A produce body is:
 *
 *   u8 type (1) | u8 name_len | name | u64 incarnation | u64 first_id |
 *   u32 count | count x (u32 len | payload)
 *
 * IDs inside one record are consecutive (first_id + i). A record is valid
 * only if its length fits, its checksum matches and its body parses; the
 * first invalid record ends the log (a torn or corrupt tail).
 */
#ifndef LMQ_ENGINE_WAL_H
#define LMQ_ENGINE_WAL_H

#include <stddef.h>
#include <stdint.h>

#define LMQ_WAL_MAGIC 0x57514d4cu /* "LMQW" little-endian */
#define LMQ_WAL_HDR 8u            /* magic + body_len */
#define LMQ_WAL_TRAILER 8u        /* checksum */
#define LMQ_WAL_REC_PRODUCE 1
/* Largest body accepted by the decoder (bounds allocation on corrupt input). */
#define LMQ_WAL_MAX_BODY ((uint32_t)0xF0000000u)

/* Bytes a produce record takes for this name and these payload lengths. */
size_t lmq__wal_rec_size(size_t name_len, size_t count, uint64_t payload_bytes);

/*
 * Write a produce record header into buf (which has lmq__wal_rec_size() bytes)
 * and return a pointer where the count (u32 len | payload) entries go. Once the
 * segment it goes to is known, call lmq__wal_rec_seal(buf, size, seg).
 */
unsigned char *lmq__wal_rec_begin(unsigned char *buf, size_t size,
                                  const char *name, size_t name_len,
                                  uint64_t incarnation, uint64_t first_id,
                                  uint32_t count);
void lmq__wal_rec_seal(unsigned char *buf, size_t size, uint64_t seg);

/* A decoded produce record; pointers point into the caller's buffer. */
typedef struct lmq_wal_rec {
  const char *name;
  size_t name_len;
  uint64_t incarnation;
  uint64_t first_id;
  uint32_t count;
  const unsigned char *msgs; /* count x (u32 len | payload) */
  size_t msgs_len;
  size_t size; /* whole record, header to checksum */
} lmq_wal_rec;

/*
 * Decode the record at buf[0..avail) of segment seg. Returns 1 with *rec filled, 0 when the
 * bytes are not a complete valid record (torn, corrupt, zero fill), never
 * reading past avail. Pure: no I/O, no allocation.
 */
int lmq__wal_decode(lmq_wal_rec *rec, const unsigned char *buf, size_t avail,
                   uint64_t seg);

/* Iterate the payloads of a decoded record: *pos starts at 0. Returns 1 and
 * sets data/len, or 0 at the end. The decoder has validated the layout. */
int lmq__wal_rec_next(const lmq_wal_rec *rec, size_t *pos,
                      const unsigned char **data, uint32_t *len);

/* Path of segment seq inside waldir (buf of at least len bytes). */
void lmq__wal_seg_path(char *buf, size_t len, const char *waldir, uint64_t seq);
/*
 * Sorted list of segment numbers in waldir. *out is malloc'ed (caller frees).
 * Returns 0 or an LMQ error.
 */
int lmq__wal_list(uint64_t **out, size_t *n, const char *waldir);

static inline void lmq__put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}
static inline void lmq__put64(unsigned char *p, uint64_t v) {
  lmq__put32(p, (uint32_t)v);
  lmq__put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t lmq__get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static inline uint64_t lmq__get64(const unsigned char *p) {
  return (uint64_t)lmq__get32(p) | (uint64_t)lmq__get32(p + 4) << 32;
}
static inline void lmq__put64be(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}
static inline uint64_t lmq__get64be(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

#endif
