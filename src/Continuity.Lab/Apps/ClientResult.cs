using System.Globalization;
using System.Text.RegularExpressions;

namespace Continuity.Lab.Apps;

/// <summary>
/// The verdict of the verifying client ct-kv-client (tests/testserver): its last line, "RESULT ok=... requests=...
/// mismatches=... resets=... eofs=... timeouts=... longest_stall_ms=... udp_...". Every reply proves the server's
/// byte total and hash per connection (per flow for UDP), so a lost or duplicated byte shows as a mismatch.
/// </summary>
internal sealed partial record ClientResult(
    bool Ok, long Requests, long Replies, long Mismatches, long Resets, long Eofs, long Timeouts, long LongestStallMs,
    long UdpRequests, long UdpReplies, long UdpMismatches, long UdpTimeouts, string Line)
{
    [GeneratedRegex(@"^RESULT ok=.*$", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex ResultLine();

    /// <summary>The last RESULT line of the client's output, or null if it printed none (it was killed, or never ran).</summary>
    public static ClientResult? Parse(string output)
    {
        var line = ResultLine().Matches(output).LastOrDefault()?.Value.TrimEnd('\r');
        if (line is null) return null;
        long Field(string name)
        {
            var m = Regex.Match(line, $@"(?:^| ){Regex.Escape(name)}=(\d+)");
            return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        }
        return new ClientResult(Field("ok") == 1, Field("requests"), Field("replies"), Field("mismatches"), Field("resets"),
            Field("eofs"), Field("timeouts"), Field("longest_stall_ms"), Field("udp_requests"), Field("udp_replies"),
            Field("udp_mismatches"), Field("udp_timeouts"), line);
    }

    /// <summary>
    /// Why this result does not prove that every byte arrived exactly once, or nothing. The client must really have
    /// talked (<paramref name="minRequests"/>), every request but the last of each connection answered; no rate is
    /// judged: on a loaded machine the queue's round trips slow down, and speed belongs in the benchmarks.
    /// </summary>
    public IReadOnlyList<string> Problems(int connections, bool udp, long minRequests)
    {
        var problems = new List<string>();
        if (!Ok || Mismatches + Resets + Eofs + Timeouts > 0)
            problems.Add($"client failed: {Line}");
        if (Requests < minRequests)
            problems.Add($"only {Requests} requests were made over {connections} connections (expected at least {minRequests})");
        // When its time is up the client stops with at most one request in flight per connection.
        if (Requests - Replies is < 0 || Requests - Replies > connections)
            problems.Add($"{Requests - Replies} requests unanswered at the end, more than one per connection ({connections})");
        if (udp && (UdpReplies == 0 || UdpMismatches > 0 || UdpTimeouts > 0))
            problems.Add($"udp: {UdpReplies} replies, {UdpMismatches} mismatches, {UdpTimeouts} timeouts");
        return problems;
    }
}
