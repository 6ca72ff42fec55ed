/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * wal.h - the write-ahead log: record format (pure encode/decode, no I/O) and
 * segment listing.
 *
 * A segment is DIR/wal/<16-digit number>.log, a sequence of records:
 *
 *   u32 magic ^ seg | u32 body_len | body | u64 xxh3(magic..body, seed = seg)
 *
 * all little-endian, where seg is the segment's number. Segment files are
 * recycled (an applied segment is renamed to a future number and
 * overwritten, which makes fdatasync cheaper than appending). Both the
 * magic and the checksum seed depend on the segment number, so a stale
 * record left by a file's earlier life is not even mistaken for a torn one:
 * it is "no record of this segment", and it can never verify.
 *
 * Bodies start with a type byte:
 *
 *   PRODUCE (4): u8 name_len | name | u64 incarnation | u64 first_id |
 *                u32 count | count x (varint len | payload)
 *                IDs inside one record are consecutive (first_id + i);
 *                len is a base-128 varint (common/varint.h) of at most 5
 *                bytes: one byte for messages under 128 B, where the u32
 *                of the first format was 4% of a 100-byte message.
 *   PRODUCE (1): the first format, the same with u32 lengths; written
 *                by lmq 0.x up to the varint change, still read.
 *   MARK (2):    u64 synced   bytes [0, synced) of this segment were on disk
 *                (fdatasync returned) before this record was written. The
 *                leader writes one ahead of a chunk whenever the synced
 *                offset moved, so recovery can tell a torn tail (damage
 *                after the last sync) from corruption of synced data.
 *   END (3):     u64 next     the log goes on in segment `next` (= seg + 1);
 *                written and synced when the segment rolls, before the next
 *                segment is created. Bytes after it are stale.
 */
#ifndef LMQ_ENGINE_WAL_H
#define LMQ_ENGINE_WAL_H

#include <stddef.h>
#include <stdint.h>

#define LMQ_WAL_MAGIC 0x57514d4cu /* "LMQW" little-endian, before ^ seg */
#define LMQ_WAL_HDR 8u            /* magic + body_len */
#define LMQ_WAL_TRAILER 8u        /* checksum */
#define LMQ_WAL_REC_PRODUCE 1 /* decoded produce records carry this type */
#define LMQ_WAL_REC_MARK 2
#define LMQ_WAL_REC_END 3
#define LMQ_WAL_REC_PRODUCE_V 4 /* on disk: produce with varint lengths */
/* Size of a MARK or an END record. */
#define LMQ_WAL_CTL_SIZE (LMQ_WAL_HDR + 9u + LMQ_WAL_TRAILER)
/* Largest body accepted by the decoder (bounds allocation on corrupt input). */
#define LMQ_WAL_MAX_BODY ((uint32_t)0xF0000000u)

/* The magic a record of segment seg starts with. */
static inline uint32_t lmq__wal_magic(uint64_t seg) {
  return LMQ_WAL_MAGIC ^ (uint32_t)seg;
}

/* Bytes a produce record takes for this name, its messages' length
 * prefixes (the sum of lmq__varint_len(len) over them) and payloads. */
size_t lmq__wal_rec_size(size_t name_len, uint64_t len_bytes, uint64_t payload_bytes);

/*
 * Write a produce record header into buf (which has lmq__wal_rec_size() bytes)
 * and return a pointer where the count (varint len | payload) entries go
 * (lmq__varint_put). Once the segment it goes to is known, call
 * lmq__wal_rec_seal(buf, size, seg).
 */
unsigned char *lmq__wal_rec_begin(unsigned char *buf, size_t size,
                                  const char *name, size_t name_len,
                                  uint64_t incarnation, uint64_t first_id,
                                  uint32_t count);
/* Set the segment's magic and the checksum of the record at buf. */
void lmq__wal_rec_seal(unsigned char *buf, size_t size, uint64_t seg);
/* Write a sealed MARK or END record (LMQ_WAL_CTL_SIZE bytes) for segment seg. */
void lmq__wal_ctl(unsigned char *buf, int type, uint64_t arg, uint64_t seg);

/* A decoded record; pointers point into the caller's buffer. */
typedef struct lmq_wal_rec {
  int type;       /* LMQ_WAL_REC_* */
  uint64_t arg;   /* MARK: synced offset; END: next segment */
  /* PRODUCE only: */
  const char *name;
  size_t name_len;
  uint64_t incarnation;
  uint64_t first_id;
  uint32_t count;
  const unsigned char *msgs; /* count x (len | payload) */
  size_t msgs_len;
  int varlen; /* lengths are varints (PRODUCE_V), else u32 */
  size_t size; /* whole record, header to checksum */
} lmq_wal_rec;

/* Results of lmq__wal_decode(). */
#define LMQ_WAL_OK 1      /* a valid record */
#define LMQ_WAL_NONE 0    /* no record of this segment starts here */
#define LMQ_WAL_TORN (-1) /* this segment's magic, but it does not verify */

/*
 * Decode the record at buf[0..avail) of segment seg into *rec. Returns
 * LMQ_WAL_OK, LMQ_WAL_NONE (zero fill, stale bytes of another segment, or
 * too few bytes for a header) or LMQ_WAL_TORN (the magic of this segment
 * but a bad length, checksum or layout: a torn write or corruption). Never
 * reads past avail. Pure: no I/O, no allocation.
 */
int lmq__wal_decode(lmq_wal_rec *rec, const unsigned char *buf, size_t avail,
                   uint64_t seg);

/* Iterate the payloads of a decoded produce record: *pos starts at 0.
 * Returns 1 and sets data/len, or 0 at the end. The decoder has validated
 * the layout. */
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
