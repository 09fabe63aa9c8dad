# Draws the plots of bench/suite.sh's data files (run by scripts/bench):
#   gnuplot -e "dat='DIR'; out='DIR'; stamp='TEXT'" bench/plot.gp
# Each plot is drawn only if its data file exists.
set terminal pngcairo size 1200,480 font "sans,10"
set grid
set key below
# has the file any data line (the suite writes a comment line first)?
file_exists(f) = system("grep -qv '^#' '" . f . "' 2>/dev/null && echo 1 || echo 0") + 0

# ---- echo: round trips/s and p99 latency vs connections ----------------------------
if (file_exists(dat . "/echo.dat")) {
    set output out . "/echo.png"
    set multiplot layout 1,2 title "Thread-per-connection echo server, 64-byte round trips (" . stamp . ")"
    set logscale x
    set xlabel "concurrent connections"
    set xtics ("10" 10, "100" 100, "1,000" 1000, "10,000" 10000)
    set xrange [7:14000]
    set ylabel "round trips / s"
    set yrange [0:*]
    set format y "%.0s%c"
    set title "throughput (higher is better)"
    plot dat . "/echo.dat" using 1:3 with linespoints lw 2 pt 7 title "corun (coro-run, 1 OS thread)", \
         ""                using 1:2 with linespoints lw 2 pt 5 title "native threads", \
         ""                using 1:4 with linespoints lw 2 pt 9 title "hand-written epoll"
    set title "p99 round-trip latency (lower is better)"
    set ylabel "ms"
    set logscale y
    set yrange [*:*]
    set format y "%g"
    plot dat . "/echo.dat" using 1:($6/1000) with linespoints lw 2 pt 7 title "corun", \
         ""                using 1:($5/1000) with linespoints lw 2 pt 5 title "native threads", \
         ""                using 1:($7/1000) with linespoints lw 2 pt 9 title "hand-written epoll"
    unset multiplot
    unset logscale
    unset xtics
    set xtics
    set xrange [*:*]
}

# ---- http: requests/s and peak RSS per mode --------------------------------------------
if (file_exists(dat . "/http.dat")) {
    set output out . "/http.png"
    set multiplot layout 1,2 title "Python ThreadingHTTPServer driven by wrk -c100 (" . stamp . ")"
    set style fill solid 0.7 border -1
    set boxwidth 0.6
    set offsets 0, 0, graph 0.08, 0
    set yrange [0:*]
    set xlabel ""
    unset key
    set title "requests / s (higher is better)"
    set ylabel "requests / s"
    plot dat . "/http.dat" using 0:2:xtic(1) with boxes lc rgb "#3070b0", \
         ""                using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7
    set title "peak RSS of the server (lower is better)"
    set ylabel "MiB"
    plot dat . "/http.dat" using 0:($3/1024):xtic(1) with boxes lc rgb "#b07030", \
         ""                using 0:($3/1024):(sprintf("%.1f", $3/1024)) with labels offset 0,0.7
    unset multiplot
    set offsets 0, 0, 0, 0
    set key below
}

# ---- threads: memory and creation time per thread vs count ----------------------------
if (file_exists(dat . "/threads.dat")) {
    set output out . "/threads.png"
    set multiplot layout 1,2 title "N unmodified pthreads alive at once (" . stamp . ")"
    set logscale x
    set xlabel "threads"
    set xtics ("1k" 1000, "10k" 10000, "100k" 100000, "1M" 1000000)
    set xrange [700:1400000]
    set yrange [0:*]
    set style fill solid 0
    set key below
    nz(v) = v > 0 ? v : NaN      # 0: natively, pthread_create failed
    set title "peak RSS per thread (natively, creation fails above about 32k threads)"
    set ylabel "bytes"
    plot dat . "/threads.dat" using 1:(nz($4)) with linespoints lw 2 pt 7 title "corun", \
         ""                   using 1:(nz($2)) with linespoints lw 2 pt 5 title "native"
    set title "creation time per thread"
    set ylabel "µs"
    plot dat . "/threads.dat" using 1:(nz($5)) with linespoints lw 2 pt 7 title "corun", \
         ""                   using 1:(nz($3)) with linespoints lw 2 pt 5 title "native"
    unset multiplot
}
