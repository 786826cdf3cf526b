// A Java program that logs records in a logback-like layout with stack
// traces (nested causes, suppressed, "... N more", inner classes,
// message-less and multi-line messages), records each record it wrote
// (base64 per line), and ends with an uncaught exception that the JVM
// prints itself ("Exception in thread ...").
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Base64;

public class App {
    static class Ledger {
        static class Broken extends RuntimeException {
            Broken(String m, Throwable c) { super(m, c); }
        }
    }
    static class Oops extends Exception {
        Oops() { super(); }
    }
    static class Kaput extends Throwable {
        Kaput(String m) { super(m); }
    }

    static Writer log;
    static Writer recs;
    static final String NL = System.lineSeparator();

    static void rec(String level, String msg, Throwable t) throws IOException {
        String r = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSS")) + " " + level + " [main] com.shop.App - " + msg;
        if (t != null) {
            StringWriter sw = new StringWriter();
            t.printStackTrace(new PrintWriter(sw));
            String s = sw.toString();
            if (s.endsWith(NL)) s = s.substring(0, s.length() - NL.length());
            r = r + NL + s;
        }
        log.write(r + NL);
        log.flush();
        recs.write(Base64.getEncoder().encodeToString(r.getBytes(StandardCharsets.UTF_8)) + "\n");
        recs.flush();
    }

    static void deep(int n) throws Oops {
        if (n == 0) throw new Oops();
        deep(n - 1);
    }

    public static void main(String[] a) throws Exception {
        log = new OutputStreamWriter(new FileOutputStream(a[0], true), StandardCharsets.UTF_8);
        recs = new OutputStreamWriter(new FileOutputStream(a[1]), StandardCharsets.UTF_8);
        rec("INFO", "starting", null);
        rec("WARN", "a message" + NL + "on two lines", null);
        try {
            try {
                deep(5);
            } catch (Oops o) {
                throw new Ledger.Broken("ledger broken" + NL + "second line of the message", o);
            }
        } catch (Ledger.Broken b) {
            rec("ERROR", "settle failed", b);
        }
        try {
            Exception e = new IllegalStateException("primary");
            e.addSuppressed(new Kaput("suppressed one"));
            throw e;
        } catch (Exception e) {
            rec("ERROR", "with suppressed", e);
        }
        try {
            deep(3);
        } catch (Oops o) {
            rec("ERROR", "message-less", o);
        }
        rec("INFO", "done", null);
        log.close();
        recs.close();
        throw new Ledger.Broken("uncaught at the end", new Kaput("root cause"));
    }
}
