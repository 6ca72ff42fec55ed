# pair.awk - one line per figure of a bench_suite CSV, lmq beside RocksDB:
#   label unit lmq_med lmq_min lmq_max rdb_med rdb_min rdb_max
#   rss_lmq rss_rdb devbytes_lmq devbytes_rdb dir_lmq dir_rdb
# ("-" where a value is missing; plot.gp reads it with awk -F, -f pair.awk).
function v(x) { return x == "" ? "-" : x }
NR > 1 && $3 != "machine" {
  k = $1 ($2 != "" ? ":" $2 : "")
  if (!(k in seen)) { seen[k] = 1; order[++n] = k; unit[k] = $4 }
  if ($3 == "lmq") {
    l[k] = $5 " " $6 " " $7; rl[k] = v($9); dl[k] = v($11); zl[k] = v($12)
  } else {
    r[k] = $5 " " $6 " " $7; rr[k] = v($9); dr[k] = v($11); zr[k] = v($12)
  }
}
END {
  for (i = 1; i <= n; i++) {
    k = order[i]
    print k, unit[k], (k in l ? l[k] : "- - -"), (k in r ? r[k] : "- - -"),
      (k in rl ? rl[k] : "-"), (k in rr ? rr[k] : "-"),
      (k in dl ? dl[k] : "-"), (k in dr ? dr[k] : "-"),
      (k in zl ? zl[k] : "-"), (k in zr ? zr[k] : "-")
  }
}
