/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * lmq_stream.h - typed messages, MsgStream, TtMsgStream and the channel
 * service, on top of a stream backend (the lmq engine by default).
 *
 * Concepts (they follow the original Go design, see docs/):
 *  - lmq_tsmsg: one message: type (LMQ_MSG_*), ID, timestamps, source ID,
 *    hash keys, W3C trace context, its position once consumed, and a typed
 *    body. For the built-in types the body is the protobuf-c struct listed
 *    next to the type in lmq_msg.pb-c.h (installed beside this header), for
 *    example Lmqpb__InsertRequest for LMQ_MSG_INSERT.
 *  - lmq_dispatcher: type -> marshal/unmarshal functions ("proto": every
 *    built-in type as protobuf; "mem": in-process, no encoding).
 *  - lmq_msg_pack: a batch of messages with its time range and positions.
 *  - lmq_msgstream: a producer and/or consumer over a set of channels; a
 *    TtMsgStream is the same handle created by lmq_ttmsgstream_create(), and
 *    emits one pack per time tick common to all its channels.
 *  - lmq_chansvc: allocates, describes and destroys named channels with an
 *    owner description kept in the metadata store.
 *
 * Conventions are those of lmq.h: functions return 0 or a negative LMQ_E*
 * code (lmq_errmsg() has the details), outputs come first, what comes back
 * through a pointer-to-pointer belongs to the caller and is freed with the
 * function named in the comment, destroy/free functions accept NULL.
 *
 * Threading: a message, pack or stream is used by one thread at a time
 * (messages may be shared read-only between threads once built; their
 * reference count is atomic). Dispatchers and stream factories are safe to
 * share after their setup calls (register, set) are done.
 *
 * This header compiles alone with -std=c99 -pedantic.
 */
#ifndef LMQ_STREAM_H
#define LMQ_STREAM_H

#include "lmq.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Message types: the numbers are part of the wire format.                  */

enum lmq_msg_type {
  LMQ_MSG_UNDEFINED = 0,
  /* definition requests: collection (body: Lmqpb__CollectionRequest unless
   * noted) */
  LMQ_MSG_CREATE_COLLECTION = 100,
  LMQ_MSG_DROP_COLLECTION = 101,
  LMQ_MSG_HAS_COLLECTION = 102,
  LMQ_MSG_DESCRIBE_COLLECTION = 103,
  LMQ_MSG_SHOW_COLLECTIONS = 104,
  LMQ_MSG_GET_SYSTEM_CONFIGS = 105, /* Lmqpb__GetSystemConfigsRequest */
  LMQ_MSG_LOAD_COLLECTION = 106,
  LMQ_MSG_RELEASE_COLLECTION = 107,
  LMQ_MSG_CREATE_ALIAS = 108, /* Lmqpb__AliasRequest */
  LMQ_MSG_DROP_ALIAS = 109,   /* Lmqpb__AliasRequest */
  LMQ_MSG_ALTER_ALIAS = 110,  /* Lmqpb__AliasRequest */
  /* definition requests: partition (Lmqpb__PartitionRequest) */
  LMQ_MSG_CREATE_PARTITION = 200,
  LMQ_MSG_DROP_PARTITION = 201,
  LMQ_MSG_HAS_PARTITION = 202,
  LMQ_MSG_DESCRIBE_PARTITION = 203,
  LMQ_MSG_SHOW_PARTITIONS = 204,
  LMQ_MSG_LOAD_PARTITIONS = 205,
  LMQ_MSG_RELEASE_PARTITIONS = 206,
  /* definition requests: segment (Lmqpb__SegmentRequest) */
  LMQ_MSG_SHOW_SEGMENTS = 250,
  LMQ_MSG_DESCRIBE_SEGMENT = 251,
  LMQ_MSG_LOAD_SEGMENTS = 252,
  LMQ_MSG_RELEASE_SEGMENTS = 253,
  LMQ_MSG_HANDOFF_SEGMENTS = 254,
  LMQ_MSG_LOAD_BALANCE_SEGMENTS = 255,
  /* definition requests: index (Lmqpb__IndexRequest) */
  LMQ_MSG_CREATE_INDEX = 300,
  LMQ_MSG_DESCRIBE_INDEX = 301,
  LMQ_MSG_DROP_INDEX = 302,
  /* manipulation requests */
  LMQ_MSG_INSERT = 400, /* Lmqpb__InsertRequest */
  LMQ_MSG_DELETE = 401, /* Lmqpb__DeleteRequest */
  LMQ_MSG_FLUSH = 402,  /* Lmqpb__FlushRequest */
  /* query */
  LMQ_MSG_SEARCH = 500,                     /* Lmqpb__SearchRequest */
  LMQ_MSG_SEARCH_RESULT = 501,              /* Lmqpb__SearchResults */
  LMQ_MSG_GET_INDEX_STATE = 502,            /* Lmqpb__IndexRequest */
  LMQ_MSG_GET_INDEX_BUILD_PROGRESS = 503,   /* Lmqpb__IndexRequest */
  LMQ_MSG_GET_COLLECTION_STATISTICS = 504,  /* Lmqpb__StatisticsRequest */
  LMQ_MSG_GET_PARTITION_STATISTICS = 505,   /* Lmqpb__StatisticsRequest */
  LMQ_MSG_RETRIEVE = 506,                   /* Lmqpb__RetrieveRequest */
  LMQ_MSG_RETRIEVE_RESULT = 507,            /* Lmqpb__RetrieveResults */
  LMQ_MSG_WATCH_DM_CHANNELS = 508,          /* Lmqpb__ChannelsRequest */
  LMQ_MSG_REMOVE_DM_CHANNELS = 509,         /* Lmqpb__ChannelsRequest */
  LMQ_MSG_WATCH_QUERY_CHANNELS = 510,       /* Lmqpb__ChannelsRequest */
  LMQ_MSG_REMOVE_QUERY_CHANNELS = 511,      /* Lmqpb__ChannelsRequest */
  /* data service */
  LMQ_MSG_SEGMENT_INFO = 600, /* Lmqpb__SegmentInfoBody */
  /* system control */
  LMQ_MSG_TIME_TICK = 1200,          /* Lmqpb__Empty (the tick is timestamp) */
  LMQ_MSG_QUERY_NODE_STATS = 1201,   /* Lmqpb__QueryNodeStatsBody */
  LMQ_MSG_LOAD_INDEX = 1202,         /* Lmqpb__LoadIndexBody */
  LMQ_MSG_REQUEST_ID = 1203,         /* Lmqpb__AllocRequest */
  LMQ_MSG_REQUEST_TSO = 1204,        /* Lmqpb__AllocRequest */
  LMQ_MSG_ALLOCATE_SEGMENT = 1205,   /* Lmqpb__AllocateSegmentBody */
  LMQ_MSG_SEGMENT_STATISTICS = 1206, /* Lmqpb__SegmentStatisticsBody */
  LMQ_MSG_SEGMENT_FLUSH_DONE = 1207, /* Lmqpb__SegmentFlushDoneBody */
  LMQ_MSG_DATA_NODE_TT = 1208        /* Lmqpb__DataNodeTtBody */
};

/* The seed's name of a type ("Insert", "TimeTick", ...), or NULL when the
 * number is not a built-in type. */
LMQ_API const char *lmq_msg_type_name(int type);

/*
 * The protobuf-c descriptor (a const ProtobufCMessageDescriptor *) of a
 * built-in type's body, or NULL for unknown types. With it a caller can
 * allocate or free bodies generically.
 */
LMQ_API const void *lmq_msg_type_descriptor(int type);

/* ------------------------------------------------------------------------ */
/* Positions                                                                */

/* Where a message sits: its channel, its backend ID (opaque bytes; 8 bytes
 * big-endian for the engine), the consumer group that read it, and a
 * timestamp (the message's end timestamp, or a pack's end_ts). */
typedef struct lmq_msg_position {
  char *channel;
  unsigned char *msg_id;
  size_t msg_id_len;
  char *group; /* may be NULL */
  uint64_t timestamp;
} lmq_msg_position;

/* Deep-copy src into *dst (dst's previous contents are not freed).
 * Errors: LMQ_EINVAL (NULL), LMQ_ENOMEM. */
LMQ_API int lmq_msg_position_copy(lmq_msg_position *dst,
                                  const lmq_msg_position *src);
/* Free what *p points to and zero it. NULL is accepted. */
LMQ_API void lmq_msg_position_clear(lmq_msg_position *p);
/* Clear and free an array of n positions as returned by this library. */
LMQ_API void lmq_msg_positions_free(lmq_msg_position *p, size_t n);

/*
 * Serialize n positions (for a checkpoint) into a malloc'ed buffer *out of
 * *len bytes (the caller frees it with free()), and back. Unmarshal returns
 * an array freed with lmq_msg_positions_free(*out, *n).
 * Errors: LMQ_EINVAL, LMQ_ENOMEM, LMQ_ECORRUPT (bytes that are not positions).
 */
LMQ_API int lmq_msg_positions_marshal(unsigned char **out, size_t *len,
                                      const lmq_msg_position *p, size_t n);
LMQ_API int lmq_msg_positions_unmarshal(lmq_msg_position **out, size_t *n,
                                        const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */

typedef struct lmq_tsmsg lmq_tsmsg;

/* Frees a body that a message owns. */
typedef void (*lmq_body_free_fn)(void *body);

/*
 * Create a message of the given type (0..UINT32_MAX; built-in or user type)
 * with body. If body_free is not NULL the message owns body and calls
 * body_free(body) when its last reference goes; if NULL the caller keeps
 * ownership and body must outlive the message (and every message created
 * from it by a repack function). For a built-in type, a body of the listed
 * protobuf-c type built with its _INIT macro can be freed by
 * lmq_msg_body_free_proto when every part of it was malloc'ed.
 * All other fields start at 0 / empty. The reference count starts at 1.
 * Errors: LMQ_EINVAL (type out of range), LMQ_ENOMEM (body is then not freed).
 */
LMQ_API int lmq_tsmsg_create(lmq_tsmsg **out, int64_t type, void *body,
                             lmq_body_free_fn body_free);
/* protobuf_c_message_free_unpacked(body, NULL), as an lmq_body_free_fn. */
LMQ_API void lmq_msg_body_free_proto(void *body);

/* Take one more reference; returns m. */
LMQ_API lmq_tsmsg *lmq_tsmsg_ref(lmq_tsmsg *m);
/* Drop one reference; the last one frees the message. NULL is accepted. */
LMQ_API void lmq_tsmsg_unref(lmq_tsmsg *m);

/* Accessors (m must not be NULL). */
LMQ_API uint32_t lmq_tsmsg_type(const lmq_tsmsg *m);
LMQ_API int64_t lmq_tsmsg_id(const lmq_tsmsg *m);
LMQ_API uint64_t lmq_tsmsg_timestamp(const lmq_tsmsg *m);
LMQ_API uint64_t lmq_tsmsg_begin_ts(const lmq_tsmsg *m);
LMQ_API uint64_t lmq_tsmsg_end_ts(const lmq_tsmsg *m);
LMQ_API int64_t lmq_tsmsg_source_id(const lmq_tsmsg *m);
/* The hash keys; *n receives their number (may be 0; the pointer then may be
 * NULL). Valid while m lives and until the next set_hash_keys. */
LMQ_API const uint32_t *lmq_tsmsg_hash_keys(const lmq_tsmsg *m, size_t *n);
/* The W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>") or NULL. */
LMQ_API const char *lmq_tsmsg_traceparent(const lmq_tsmsg *m);
/* The position the message was consumed at, or NULL if not consumed. */
LMQ_API const lmq_msg_position *lmq_tsmsg_position(const lmq_tsmsg *m);
/* Size in bytes on the wire once marshaled or consumed (0 before). */
LMQ_API size_t lmq_tsmsg_size(const lmq_tsmsg *m);
/*
 * The typed body (see enum lmq_msg_type), or NULL. A message consumed from a
 * stream keeps its body encoded until the first call (TtMsgStream consumers
 * that only route by the envelope never pay for decoding it); that call
 * decodes and validates it exactly as lmq_msg_unmarshal() would, and returns
 * NULL when the body does not decode (lmq_errmsg() says why; the envelope --
 * type, IDs, timestamps, hash keys, position -- was checked on receipt).
 * Thread-safe; the pointer stays valid while m is referenced.
 */
LMQ_API void *lmq_tsmsg_body(const lmq_tsmsg *m);

/* Setters. set_timestamp sets the base timestamp and, as a convenience,
 * begin_ts and end_ts to the same value; set_time_range overrides those two
 * (begin <= end, else LMQ_EINVAL). set_hash_keys copies keys (LMQ_ENOMEM).
 * set_traceparent validates the W3C format (LMQ_EINVAL) and copies it; NULL
 * removes it. set_position copies pos (NULL removes it). */
LMQ_API void lmq_tsmsg_set_id(lmq_tsmsg *m, int64_t id);
LMQ_API void lmq_tsmsg_set_timestamp(lmq_tsmsg *m, uint64_t ts);
LMQ_API int lmq_tsmsg_set_time_range(lmq_tsmsg *m, uint64_t begin_ts,
                                     uint64_t end_ts);
LMQ_API void lmq_tsmsg_set_source_id(lmq_tsmsg *m, int64_t source_id);
LMQ_API int lmq_tsmsg_set_hash_keys(lmq_tsmsg *m, const uint32_t *keys,
                                    size_t n);
LMQ_API int lmq_tsmsg_set_traceparent(lmq_tsmsg *m, const char *traceparent);
LMQ_API int lmq_tsmsg_set_position(lmq_tsmsg *m, const lmq_msg_position *pos);

/* A TimeTick message at ts (body: an owned empty body). Errors: LMQ_ENOMEM. */
LMQ_API int lmq_tsmsg_new_time_tick(lmq_tsmsg **out, int64_t id, uint64_t ts,
                                    int64_t source_id);

/* ------------------------------------------------------------------------ */
/* Unmarshal dispatcher                                                     */

typedef struct lmq_dispatcher lmq_dispatcher;

/*
 * How one type's body goes to bytes and back. marshal stores a malloc'ed
 * buffer in *out (freed by the library with free()); unmarshal stores a new
 * body in *body and the function that frees it in *body_free. Both return 0
 * or a negative LMQ_E* code (LMQ_ECORRUPT for bytes that do not decode). They
 * may be called from several threads at once. arg is passed through.
 */
typedef struct lmq_msg_codec {
  int (*marshal)(unsigned char **out, size_t *len, const void *body, void *arg);
  int (*unmarshal)(void **body, lmq_body_free_fn *body_free, const void *data,
                   size_t len, void *arg);
  void *arg;
} lmq_msg_codec;

/* A dispatcher with every built-in type registered as protobuf.
 * Errors: LMQ_ENOMEM. Freed with lmq_dispatcher_destroy(). */
LMQ_API int lmq_dispatcher_create_proto(lmq_dispatcher **out);

/*
 * The "mem" dispatcher: for streams inside one process. Marshaling a message
 * keeps a reference to it in the dispatcher and encodes only a token; the
 * unmarshal of that token returns the same message (shared, read-only) with
 * a new reference, whatever its type. Tokens are valid until the dispatcher
 * is destroyed, and only for that dispatcher: others fail with LMQ_ECORRUPT.
 * Codecs registered on it are ignored. Errors: LMQ_ENOMEM.
 */
LMQ_API int lmq_dispatcher_create_mem(lmq_dispatcher **out);
LMQ_API void lmq_dispatcher_destroy(lmq_dispatcher *d);

/* Register (or replace) the codec for type. Not thread-safe against
 * concurrent use of d. Errors: LMQ_EINVAL (NULL codec or functions, type out
 * of range), LMQ_ENOMEM. */
LMQ_API int lmq_dispatcher_register(lmq_dispatcher *d, int64_t type,
                                    const lmq_msg_codec *codec);

/*
 * Encode m (envelope + body) into a malloc'ed *out of *len bytes (caller
 * frees with free()). Errors: LMQ_EINVAL, LMQ_ENOTSUP (no codec for the
 * type), LMQ_ENOMEM, or the codec's error.
 */
LMQ_API int lmq_msg_marshal(unsigned char **out, size_t *len,
                            lmq_dispatcher *d, const lmq_tsmsg *m);
/*
 * Decode bytes into a new message (*out, released with lmq_tsmsg_unref()).
 * Never crashes on arbitrary input: LMQ_ECORRUPT for bytes that are not a
 * message, LMQ_ENOTSUP for a type with no codec, LMQ_EINVAL, LMQ_ENOMEM.
 */
LMQ_API int lmq_msg_unmarshal(lmq_tsmsg **out, lmq_dispatcher *d,
                              const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Packs                                                                    */

typedef struct lmq_msg_pack {
  uint64_t begin_ts;
  uint64_t end_ts;
  lmq_tsmsg **msgs; /* the pack holds one reference on each */
  size_t nmsgs;
  lmq_msg_position *start_positions; /* one per channel */
  size_t nstart;
  lmq_msg_position *end_positions; /* one per channel */
  size_t nend;
  size_t cap_; /* private */
} lmq_msg_pack;

/* An empty pack. Errors: LMQ_ENOMEM. Freed with lmq_msg_pack_destroy(). */
LMQ_API int lmq_msg_pack_create(lmq_msg_pack **out);
/* Append m; the pack takes over the caller's reference on success.
 * Errors: LMQ_EINVAL, LMQ_ENOMEM (m is then still the caller's). */
LMQ_API int lmq_msg_pack_append(lmq_msg_pack *p, lmq_tsmsg *m);
/* Drop the references on the messages and free the positions. */
LMQ_API void lmq_msg_pack_destroy(lmq_msg_pack *p);

/* ------------------------------------------------------------------------ */
/* Repack                                                                   */

/* Collects a repack function's routing decisions. */
typedef struct lmq_repack_out lmq_repack_out;

/*
 * Route msg to the channel with index channel (in as_producer order). The
 * route takes a new reference on msg (the caller keeps its own). Any index
 * is accepted here; produce fails with LMQ_EINVAL, sending nothing, when one
 * is outside [0, nchannels). Errors: LMQ_EINVAL (NULL), LMQ_ENOMEM.
 */
LMQ_API int lmq_repack_route(lmq_repack_out *out, int32_t channel,
                             lmq_tsmsg *msg);

/*
 * A repack function: route each of the n msgs (to zero, one or several
 * channels) with lmq_repack_route(). Messages routed to one channel are sent
 * in routing order. Return 0, or a negative code that produce returns.
 */
typedef int (*lmq_repack_fn)(lmq_repack_out *out, lmq_tsmsg *const *msgs,
                             size_t n, size_t nchannels, void *arg);

/*
 * The default: message i goes to hash_keys[0] % nchannels, except Insert,
 * whose rows are routed each by its hash value (the message's hash keys, or
 * the body's hash_values, one per row) and regrouped into one Insert message
 * per channel holding that channel's rows in their order (a message whose
 * rows all land on one channel is sent as is); Delete goes by its first key.
 * An Insert is checked whole before it is split: row IDs, timestamps and
 * body hash values are absent or one per row; each column holds exactly
 * rows x per-row values in the array its type names and nothing in the
 * others. Errors: LMQ_EINVAL (a message without hash keys, an Insert that
 * fails that check), LMQ_ENOMEM.
 */
LMQ_API int lmq_repack_default(lmq_repack_out *out, lmq_tsmsg *const *msgs,
                               size_t n, size_t nchannels, void *arg);

/*
 * Run a repack function (NULL: lmq_repack_default) over in's messages for
 * nchannels channels, as produce does. out is the caller's array of
 * nchannels pointers: out[c] receives a new pack with the messages routed to
 * channel c, in routing order, or NULL when none was (free each with
 * lmq_msg_pack_destroy()). Errors: LMQ_EINVAL (NULL, nchannels 0, a route
 * outside [0, nchannels): nothing is returned then), the function's error,
 * LMQ_ENOMEM.
 */
LMQ_API int lmq_repack_apply(lmq_msg_pack **out, size_t nchannels,
                             lmq_repack_fn fn, void *arg,
                             const lmq_msg_pack *in);

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */

typedef struct lmq_stream_factory lmq_stream_factory;
typedef struct lmq_msgstream lmq_msgstream;

/* A factory with the defaults: backend "engine", dispatcher "proto",
 * receive_buffer 1024. Errors: LMQ_ENOMEM. */
LMQ_API int lmq_stream_factory_create(lmq_stream_factory **out);
/*
 * Release the factory. Streams created from it stay valid (they share the
 * backend, which closes with the last of them). NULL is accepted.
 */
LMQ_API void lmq_stream_factory_destroy(lmq_stream_factory *f);

/*
 * Set one parameter (copied). Keys:
 *   "backend"          "engine" (default); "rocksdb" and "nats" when built
 *                      with --with-rocksdb / libnats (see docs/stream.md)
 *   "engine.dir"       data directory the factory opens (lmq_env_open) when
 *                      the first stream is created, unless an env was given
 *                      with lmq_stream_factory_set_env()
 *   "engine.sync"      "always" | "interval" | "none" for that env
 *   "engine.memory_limit"  bytes (0 = none, else >= 1048576): that env's
 *                      memory_limit (lmq.h); its max_message_size becomes
 *                      at most 1/16 of it. Backend "engine" only.
 *   "nats.url"         server(s) of backend "nats", comma-separated for a
 *                      cluster (default "nats://127.0.0.1:4222"); its open
 *                      fails with LMQ_EUNAVAIL when no JetStream server
 *                      answers
 *   "nats.replicas"    "1" (default), "3" or "5": replicas of the streams
 *                      backend "nats" creates (docs/deploy.md)
 *   "meta.uri"         "etcd://..." (docs/meta.md): the channel service's
 *                      metadata store, on any backend; "" (default): the
 *                      engine's own store, or on backends without one an
 *                      embedded store in engine.dir/lmq-meta
 *   "dispatcher"       "proto" | "mem"
 *   "receive_buffer"   messages fetched from a channel per backend read
 *                      (1..1048576)
 * Errors: LMQ_EINVAL (unknown key, bad value; lmq_errmsg() says which),
 * LMQ_ENOMEM. Not valid once a stream has been created (LMQ_EBUSY).
 */
LMQ_API int lmq_stream_factory_set(lmq_stream_factory *f, const char *key,
                                   const char *value);
/* Use an existing env (borrowed: it must outlive every stream). */
LMQ_API int lmq_stream_factory_set_env(lmq_stream_factory *f, lmq_env *env);
/* Use this dispatcher (borrowed: it must outlive every stream). */
LMQ_API int lmq_stream_factory_set_dispatcher(lmq_stream_factory *f,
                                              lmq_dispatcher *d);

/* A plain MsgStream / a TtMsgStream. The first call opens the backend.
 * Errors: LMQ_EINVAL (no engine.dir nor env), the backend's open errors
 * (LMQ_EBUSY, LMQ_EIO...), LMQ_ENOMEM. Freed with lmq_msgstream_close(). */
LMQ_API int lmq_msgstream_create(lmq_msgstream **out, lmq_stream_factory *f);
LMQ_API int lmq_ttmsgstream_create(lmq_msgstream **out, lmq_stream_factory *f);

/* Close the stream: its consumer groups stay (their cursors too). NULL ok. */
LMQ_API void lmq_msgstream_close(lmq_msgstream *s);

/* Produce to these n channels (created when missing). Once per stream.
 * Errors: LMQ_EINVAL (bad names, n == 0, already a producer), backend
 * errors. */
LMQ_API int lmq_msgstream_as_producer(lmq_msgstream *s,
                                      const char *const *channels, size_t n);

/* Replace the repack function (NULL restores lmq_repack_default). */
LMQ_API int lmq_msgstream_set_repack(lmq_msgstream *s, lmq_repack_fn fn,
                                     void *arg);

/*
 * Repack pack's messages to the producer channels and append them, each
 * channel's messages in one backend call. The pack is not modified or
 * consumed. Errors: LMQ_EINVAL (not a producer, out-of-range route, NULL),
 * the repack function's error, marshal errors, backend errors (messages
 * already appended to other channels stay).
 */
LMQ_API int lmq_msgstream_produce(lmq_msgstream *s, const lmq_msg_pack *pack);

/*
 * Append every message of pack to every producer channel. *ids (may be NULL)
 * receives nchannels * nmsgs positions, channel-major ([c * nmsgs + i]),
 * freed with lmq_msg_positions_free(*ids, *nids).
 */
LMQ_API int lmq_msgstream_broadcast(lmq_msg_position **ids, size_t *nids,
                                    lmq_msgstream *s, const lmq_msg_pack *pack);

enum lmq_sub_start { LMQ_SUB_EARLIEST = 0, LMQ_SUB_LATEST = 1 };

/*
 * Consume these n channels (created when missing) as subscription subname
 * (one consumer group per channel). start applies when the group is new; an
 * existing group keeps its cursor. Once per stream.
 * Errors: LMQ_EINVAL (bad names, n == 0, duplicates, already a consumer),
 * backend errors.
 */
LMQ_API int lmq_msgstream_as_consumer(lmq_msgstream *s,
                                      const char *const *channels, size_t n,
                                      const char *subname, int start);

/*
 * Wait up to timeout_ms (0 polls, < 0 forever) for the next pack.
 * Plain MsgStream: the messages available now (up to receive_buffer per
 * channel), begin_ts/end_ts the smallest begin and largest end among them,
 * start/end positions the first/last message read per channel.
 * TtMsgStream: one pack per common time tick (see docs/stream.md).
 * Returns 0 and *out (freed with lmq_msg_pack_destroy()), or LMQ_ETIMEDOUT
 * (*out NULL), LMQ_EINVAL (not a consumer), backend errors. A message that
 * fails to decode is skipped (a stream must not stall on one bad message).
 * Memory: consumed messages (up to 8 KiB each) are carved from shared 64 KiB
 * blocks, freed when the last message in them is; a message kept with
 * lmq_tsmsg_ref() after its pack is destroyed keeps its block alive.
 */
LMQ_API int lmq_msgstream_consume(lmq_msg_pack **out, lmq_msgstream *s,
                                  int timeout_ms);

/*
 * A file descriptor that is readable when consume may have something (the
 * seed's Chan()); poll it, then call consume with timeout 0. Owned by s.
 * Errors: LMQ_EINVAL (not a consumer).
 */
LMQ_API int lmq_msgstream_fd(int *out, lmq_msgstream *s);

/*
 * Move the consumer to positions (each naming one of its channels).
 * Plain MsgStream: resumes after each position. TtMsgStream: positions for
 * every channel are required; replays from each position inclusive, skipping
 * messages at or before its timestamp; the next pack starts at that time.
 * Buffered messages are dropped. Errors: LMQ_EINVAL (unknown channel, bad
 * ID bytes, missing channels), backend errors.
 */
LMQ_API int lmq_msgstream_seek(lmq_msgstream *s,
                               const lmq_msg_position *positions, size_t n);

/* ------------------------------------------------------------------------ */
/* Channel service                                                          */

typedef struct lmq_channel_owner {
  const char *role;
  const char *address;
  const char *description;
} lmq_channel_owner;

typedef struct lmq_channel_desc {
  char *channel;
  char *role;
  char *address;
  char *description;
} lmq_channel_desc;

typedef struct lmq_chansvc lmq_chansvc;

/* A channel service over the factory's backend and a metadata store: the
 * factory's "meta.uri", else the engine's own store, else (nats, rocksdb)
 * an embedded store in "engine.dir"/lmq-meta. Errors: LMQ_EINVAL (a backend
 * without a store and neither key set), metadata open errors (LMQ_EUNAVAIL,
 * LMQ_EIO...), backend open errors, LMQ_ENOMEM. Freed with
 * lmq_chansvc_destroy(). Thread-safe. */
LMQ_API int lmq_chansvc_create(lmq_chansvc **out, lmq_stream_factory *f);
LMQ_API void lmq_chansvc_destroy(lmq_chansvc *svc);

/*
 * Allocate n (1..4096) new channels with unique names (unique across every
 * process sharing the metadata store), record owner, and create them.
 * The owner records go to the store in transactions of at most 100 (etcd
 * allows 128 operations in one); if one fails, those written are removed
 * again and the numbers reserved are not reused.
 * *names: NULL-terminated array freed with lmq_strv_free().
 * Errors: LMQ_EINVAL, LMQ_ECONFLICT (kept losing races), meta and backend
 * errors.
 */
LMQ_API int lmq_chansvc_create_channels(char ***names, lmq_chansvc *svc,
                                        const lmq_channel_owner *owner,
                                        size_t n);
/* Destroy channels created by the service. All names are checked first:
 * an unknown one fails with LMQ_ENOCHANNEL and nothing is destroyed. */
LMQ_API int lmq_chansvc_destroy_channels(lmq_chansvc *svc,
                                         const char *const *names, size_t n);
/* The owner of each name, in order; *out freed with
 * lmq_channel_descs_free(*out, n). Unknown name: LMQ_ENOCHANNEL. */
LMQ_API int lmq_chansvc_describe_channels(lmq_channel_desc **out,
                                          lmq_chansvc *svc,
                                          const char *const *names, size_t n);
LMQ_API void lmq_channel_descs_free(lmq_channel_desc *d, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* LMQ_STREAM_H */
