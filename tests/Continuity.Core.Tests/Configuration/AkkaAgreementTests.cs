using Continuity.Core.Configuration;
using Xunit;

namespace Continuity.Core.Tests.Configuration;

/// <summary>What the checker accepts must mean the same to Akka's parser, or the positions would point at values Akka never saw.</summary>
public class AkkaAgreementTests
{
    [Fact]
    public void Accepted_syntax_reads_back_the_same_through_Akka()
    {
        var text = "x {\n  colon: 1\n  spaced = hello world\n  dir = /var/lib/c // note\n  tq = \"\"\"a\nb\"\"\"\n  sub = ${x.colon}\n  obj { inner = 2 }, after = 3\n}\n";
        var c = ContinuityConfigLoader.LoadFromString(text, "t.hocon").Config;
        Assert.Equal(1, c.GetInt("x.colon"));
        Assert.Equal("hello world", c.GetString("x.spaced"));
        Assert.Equal("/var/lib/c", c.GetString("x.dir"));
        Assert.Equal("a\nb", c.GetString("x.tq"));
        Assert.Equal(1, c.GetInt("x.sub"));
        Assert.Equal(2, c.GetInt("x.obj.inner"));
        Assert.Equal(3, c.GetInt("x.after"));
    }
}
