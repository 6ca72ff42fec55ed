# plot.gp - charts from the latest bench_suite run (bench/results/latest.dat).
#   cd bench && gnuplot plot.gp      -> results/{advantage,msgs,mbps,latency}.png
#   gnuplot -e "res='/some/dir'" plot.gp   reads and writes another directory
# latest.dat columns: measure unit lmq_med lmq_min lmq_max rdb_med rdb_min rdb_max
if (!exists("res")) res = 'results'
dat = res.'/latest.dat'
set terminal pngcairo size 1200,650 noenhanced font ',10'
set style data histogram
set style fill solid 0.8 border -1
set grid ytics
set key top right
set xtics rotate by -30 left

# 1. lmq's advantage per figure (> 1: lmq is better; latency inverted).
set output res.'/advantage.png'
set title 'lmq / RocksDB (RocksMQ layout): > 1 means lmq is better (latency: RocksDB / lmq)'
set logscale y 2
set style histogram clustered gap 1
set ylabel 'ratio (log scale)'
plot dat using (strcol(2) eq 'us' ? $6/$3 : $3/$6):xtic(1) title 'advantage' lc rgb '#3465a4', \
     1 with lines lc rgb 'black' dt 2 notitle

# 2-4. absolute figures with min-max error bars, one chart per unit.
set style histogram errorbars gap 1 lw 1
set ylabel 'msg/s (log scale)'
set logscale y 10
set output res.'/msgs.png'
set title 'throughput, msg/s (median, min-max)'
plot '< grep "\"msg/s\"" '.dat using 3:4:5:xtic(1) title 'lmq' lc rgb '#3465a4', \
     '' using 6:7:8 title 'rocksdb' lc rgb '#cc0000'

unset logscale y
set yrange [0:*]
set ylabel 'MB/s'
set output res.'/mbps.png'
set title 'batched durable produce, MB/s (median, min-max)'
plot '< grep "\"MB/s\"" '.dat using 3:4:5:xtic(1) title 'lmq' lc rgb '#3465a4', \
     '' using 6:7:8 title 'rocksdb' lc rgb '#cc0000'

set ylabel 'microseconds (log scale)'
set logscale y 10
set yrange [*:*]
set output res.'/latency.png'
set title 'produce -> consume wake-up latency, ALWAYS sync, open loop (median of runs, min-max)'
plot '< grep "\"us\"" '.dat using 3:4:5:xtic(1) title 'lmq' lc rgb '#3465a4', \
     '' using 6:7:8 title 'rocksdb' lc rgb '#cc0000'
