using Continuity.Lab.Apps;
using Xunit;

namespace Continuity.Lab.Tests.Apps;

public class ClientResultTests
{
    private const string Good = "RESULT ok=1 requests=400 replies=398 mismatches=0 resets=0 eofs=0 timeouts=0 longest_stall_ms=17142 " +
                                "longest_stall_at=udp-0#5 udp_requests=9 udp_replies=9 udp_retransmits=19 udp_mismatches=0 udp_timeouts=0 udp_stale=0 duration_ms=25059";

    [Fact]
    public void The_last_result_line_of_the_output_is_parsed()
    {
        var r = ClientResult.Parse("ct-kv-client: every connection answered\nRESULT ok=0 requests=1\n" + Good + "\n");
        Assert.NotNull(r);
        Assert.True(r.Ok);
        Assert.Equal(400, r.Requests);
        Assert.Equal(398, r.Replies);
        Assert.Equal(17142, r.LongestStallMs);
        Assert.Equal(9, r.UdpReplies);
        Assert.Empty(r.Problems(connections: 16, udp: true, minRequests: 48));
    }

    [Fact]
    public void An_output_without_a_result_line_has_no_verdict()
    {
        Assert.Null(ClientResult.Parse("ct-kv-client: 16 tcp connections established in 3 ms\n"));
    }

    [Theory]
    [InlineData("RESULT ok=0 requests=400 replies=399 mismatches=1 resets=0 eofs=0 timeouts=0 udp_replies=9", "client failed")]
    [InlineData("RESULT ok=0 requests=400 replies=399 mismatches=0 resets=1 eofs=0 timeouts=0 udp_replies=9", "client failed")]
    [InlineData("RESULT ok=1 requests=10 replies=10 mismatches=0 resets=0 eofs=0 timeouts=0 udp_replies=9", "only 10 requests")]
    [InlineData("RESULT ok=1 requests=400 replies=300 mismatches=0 resets=0 eofs=0 timeouts=0 udp_replies=9", "100 requests unanswered")]
    [InlineData("RESULT ok=1 requests=400 replies=400 mismatches=0 resets=0 eofs=0 timeouts=0 udp_replies=0", "udp: 0 replies")]
    public void A_result_that_does_not_prove_every_byte_names_why(string line, string expected)
    {
        var r = ClientResult.Parse(line)!;
        Assert.Contains(r.Problems(connections: 16, udp: true, minRequests: 48), p => p.Contains(expected));
    }
}
