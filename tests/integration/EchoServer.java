// A thread-per-connection echo server, as a plain Java program would write
// one (tests/integration/jvm.sh): `java EchoServer N` listens on a free
// loopback port, prints "listening on 127.0.0.1:PORT", serves N connections
// (each in a thread of its own, which echoes until the client closes), then
// waits for those threads, prints "served N connections, B bytes" and
// exits 0.
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

public class EchoServer {
    private static final AtomicLong bytes = new AtomicLong();

    public static void main(String[] args) throws Exception {
        int conns = Integer.parseInt(args[0]);
        List<Thread> threads = new ArrayList<>();
        try (ServerSocket ss = new ServerSocket(0, 256, InetAddress.getByName("127.0.0.1"))) {
            System.out.println("listening on 127.0.0.1:" + ss.getLocalPort());
            System.out.flush();
            for (int i = 0; i < conns; i++) {
                Socket s = ss.accept();
                Thread t = new Thread(() -> serve(s), "conn-" + i);
                t.start();
                threads.add(t);
            }
        }
        for (Thread t : threads)
            t.join();
        System.out.println("served " + conns + " connections, " + bytes.get() + " bytes");
    }

    private static void serve(Socket s) {
        try (s; InputStream in = s.getInputStream(); OutputStream out = s.getOutputStream()) {
            byte[] buf = new byte[16384];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
                bytes.addAndGet(n);
            }
        } catch (IOException e) {
            System.err.println("connection failed: " + e);
        }
    }
}
