# plot.gp - charts from a bench_suite run: the newest results/suite-*.csv
# (a run committed to the repository, so it works on a fresh checkout).
#   cd bench && gnuplot plot.gp                  -> results/*.png
#   gnuplot -e "res='/some/dir'" plot.gp         another results directory
#   gnuplot -e "csv='results/suite-X.csv'" plot.gp   one given run
# Charts: advantage, msgs, mbps, latency (speed) and rss, devbytes, dirsize
# (resources); each title names the run's date and mode.
if (!exists("res")) res = 'results'
if (!exists("csv")) csv = system('ls -t '.res.'/suite-*.csv 2>/dev/null | head -n 1')
if (strlen(csv) == 0) { print 'plot.gp: no suite-*.csv in '.res; exit }
txt = csv[1:strlen(csv) - 4].'.txt'
mode = system('head -n 1 '.txt.' 2>/dev/null | grep -o "[a-z]* mode" || echo "mode unknown"')
stamp = system('basename '.csv.' .csv | sed "s/suite-\([0-9]\{4\}\)\([0-9][0-9]\)\([0-9][0-9]\)-\([0-9][0-9]\)\([0-9][0-9]\).*/\1-\2-\3 \4:\5/"')
run = ' ('.stamp.', '.mode.')'
dat = '< awk -F, -f pair.awk '.csv
set datafile missing '-'
set terminal pngcairo size 1200,650 noenhanced font ',10'
set style data histogram
set style fill solid 0.8 border -1
set grid ytics
set key top right
set xtics rotate by -30 left

# 1. lmq's advantage per figure (> 1: lmq is better; latency inverted).
set output res.'/advantage.png'
set title 'lmq / RocksDB (RocksMQ layout): > 1 means lmq is better (latency: RocksDB / lmq)'.run
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
set title 'throughput, msg/s (median, min-max)'.run
plot '< awk -F, -f pair.awk '.csv.' | grep " msg/s "' using 3:4:5:xtic(1) title 'lmq' lc rgb '#3465a4', \
     '' using 6:7:8 title 'rocksdb' lc rgb '#cc0000'

unset logscale y
set yrange [0:*]
set ylabel 'MB/s'
set output res.'/mbps.png'
set title 'batched durable produce, MB/s (median, min-max)'.run
plot '< awk -F, -f pair.awk '.csv.' | grep " MB/s "' using 3:4:5:xtic(1) title 'lmq' lc rgb '#3465a4', \
     '' using 6:7:8 title 'rocksdb' lc rgb '#cc0000'

set ylabel 'microseconds (log scale)'
set logscale y 10
set yrange [*:*]
set output res.'/latency.png'
set title 'produce -> consume wake-up latency, ALWAYS sync, open loop (median of runs, min-max)'.run
plot '< awk -F, -f pair.awk '.csv.' | grep " us "' using 3:4:5:xtic(1) title 'lmq' lc rgb '#3465a4', \
     '' using 6:7:8 title 'rocksdb' lc rgb '#cc0000'

# 5-7. resources per figure: peak RSS, device bytes written per payload
# byte (write amplification), data-directory size after the run.
set style histogram clustered gap 1
unset logscale y
set yrange [0:*]
set output res.'/rss.png'
set title 'peak RSS of the benchmark process, MB'.run
set ylabel 'MB'
plot dat using 9:xtic(1) title 'lmq' lc rgb '#3465a4', '' using 10 title 'rocksdb' lc rgb '#cc0000'
set output res.'/devbytes.png'
set title 'device bytes written per payload byte (write amplification)'.run
set ylabel 'bytes / payload byte'
plot dat using 11:xtic(1) title 'lmq' lc rgb '#3465a4', '' using 12 title 'rocksdb' lc rgb '#cc0000'
set output res.'/dirsize.png'
set title 'data directory size after the run, MB'.run
set ylabel 'MB (log scale)'
set logscale y 10
set yrange [*:*]
plot dat using 13:xtic(1) title 'lmq' lc rgb '#3465a4', '' using 14 title 'rocksdb' lc rgb '#cc0000'
