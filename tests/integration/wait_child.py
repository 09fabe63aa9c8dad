# One thread waits for a child (subprocess: waitpid) while another ticks
# every 10 ms. Prints "rc=0 ticks=N": N near 50 when the wait parks only the
# waiting thread, near 0 if it blocks them all.
import subprocess
import threading
import time

ticks = 0
stop = False


def ticker():
    global ticks
    while not stop:
        time.sleep(0.01)
        ticks += 1


t = threading.Thread(target=ticker)
t.start()
rc = subprocess.Popen(["sleep", "0.5"]).wait()
stop = True
t.join()
print(f"rc={rc} ticks={ticks}")
