# benchmarks/plot.gp — the request workload table as a chart (gnuplot).
#
#   gnuplot -e "csv='benchmarks/results/request.csv'; png='benchmarks/results/request.png'" benchmarks/plot.gp
#
# compare.py runs this. Left: wall and CPU time as ratios to native (log scale);
# right: peak RSS. Input: request.csv (label,runs,wall_s,ratio,spread,peak_rss_mib,cpu_s,cpu_ratio,cpu_spread).
if (!exists("csv")) csv = 'benchmarks/results/request.csv'
if (!exists("png")) png = 'benchmarks/results/request.png'

set terminal pngcairo size 1400,620 font "DejaVu Sans,11" noenhanced
set output png
set datafile separator ","
set key off
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.8
set xtics rotate by -35 left nomirror font ",10"
set ytics nomirror
set grid ytics lc rgb "#dddddd"
set border 3
set bmargin 9
set offsets 0, 0, graph 0.06, 0

set multiplot layout 1,2 title "leakguard: request workload (benchmarks/request_workload.cpp)" font ",13"

set title "time, ratio to native g++ (medians)"
set logscale y 2
set yrange [0.5:*]
set ylabel "× native"
set key top left
# Two bars per run: wall time and CPU time (user+sys; steadier on a busy machine).
plot csv every ::1 using 4:xtic(1) title "wall time" lc rgb "#3b75af", \
     '' every ::1 using 8 title "CPU time" lc rgb "#9ec3e6", \
     '' every ::1 using ($0-0.2):4:(sprintf("%.1f", $4)) with labels offset 0,0.7 font ",8" notitle, \
     '' every ::1 using ($0+0.2):8:(sprintf("%.1f", $8)) with labels offset 0,0.7 font ",8" notitle
set key off

unset logscale y
set title "peak RSS (median)"
set yrange [0:*]
set ylabel "MiB"
plot csv every ::1 using 6:xtic(1) lc rgb "#c4663a", \
     '' every ::1 using 0:6:(sprintf("%.0f", $6)) with labels offset 0,0.8 font ",9"

unset multiplot
