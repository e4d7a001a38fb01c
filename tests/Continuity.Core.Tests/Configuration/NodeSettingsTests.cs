using System.Net;
using Continuity.Core.Configuration;
using Xunit;

namespace Continuity.Core.Tests.Configuration;

public class NodeSettingsTests
{
    private static NodeSettings From(string text) => NodeSettings.From(ContinuityConfigLoader.LoadFromString(text, "node.hocon"));

    [Fact]
    public void Defaults_come_from_the_reference_and_the_name_from_the_host()
    {
        var s = From("");
        Assert.Equal(Environment.MachineName, s.Name);
        Assert.Equal("/var/lib/continuity", s.StateDir);
        Assert.Equal(TimeSpan.Zero, s.JoinTimeout);
        Assert.Equal(LogFormat.Text, s.LogFormat);
        Assert.True(s.Management.Enabled);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 8558), s.Management.BindEndPoint);
        Assert.Equal("/etc/continuity/token", s.Management.TokenFile);
    }

    [Fact]
    public void Settings_from_the_file_are_typed()
    {
        var s = From("continuity { node { name = n1, join-timeout = 90s, log-format = json }\n management { enabled = off, bind = \"[::1]:9000\" } }\n");
        Assert.Equal("n1", s.Name);
        Assert.Equal(TimeSpan.FromSeconds(90), s.JoinTimeout);
        Assert.Equal(LogFormat.Json, s.LogFormat);
        Assert.False(s.Management.Enabled);
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 9000), s.Management.BindEndPoint);
    }

    [Fact]
    public void A_cluster_port_out_of_range_is_refused_before_akka_remote_dies_on_it()
    {
        var e = Assert.Throws<ConfigurationException>(() => From("akka.remote.dot-netty.tcp.port = 70000\n"));
        Assert.Equal("akka.remote.dot-netty.tcp.port", e.Key);
        Assert.Contains("expected a port 0-65535", e.Message);
        Assert.Equal("n1", From("akka.remote.dot-netty.tcp.port = 4053\ncontinuity.node.name = n1\n").Name);
    }

    [Fact]
    public void Bad_log_format_names_the_key_position_value_and_choices()
    {
        var e = Assert.Throws<ConfigurationException>(() => From("\ncontinuity.node.log-format = yaml\n"));
        Assert.Equal("node.hocon:2:1: 'continuity.node.log-format' = \"yaml\" is invalid: expected \"text\" or \"json\"", e.Message);
        Assert.Equal("continuity.node.log-format", e.Key);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("127.0.0.1:0")]
    [InlineData("127.0.0.1:70000")]
    [InlineData(":8558")]
    public void Bind_that_is_not_host_and_port_is_refused(string bind)
    {
        var e = Assert.Throws<ConfigurationException>(() => From($"continuity.management.bind = \"{bind}\"\n"));
        Assert.Contains("'continuity.management.bind'", e.Message);
        Assert.Contains("expected \"host:port\"", e.Message);
    }

    [Fact]
    public void Bad_duration_shows_an_example()
    {
        var e = Assert.Throws<ConfigurationException>(() => From("continuity.node.join-timeout = soon\n"));
        Assert.Contains("node.hocon:1:1: 'continuity.node.join-timeout' = \"soon\" is invalid: expected a duration", e.Message);
    }

    [Fact]
    public void Relative_state_dir_is_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => From("continuity.node.state-dir = data\n"));
        Assert.Contains("expected an absolute path", e.Message);
    }
    [Fact]
    public void Metrics_need_the_token_and_the_mib_is_sampled_every_5s_by_default()
    {
        var s = From("");
        Assert.True(s.Management.MetricsRequireToken);
        Assert.Equal(TimeSpan.FromSeconds(5), s.Sampling.SampleInterval);
        Assert.Equal(TimeSpan.FromSeconds(2), s.Sampling.AskTimeout);
    }

    [Fact]
    public void Unauthenticated_scraping_and_the_sampling_are_set_in_the_file()
    {
        var s = From("continuity.management.metrics-require-token = off\ncontinuity.supervision { sample-interval = 1s, ask-timeout = 500ms }\n");
        Assert.False(s.Management.MetricsRequireToken);
        Assert.Equal(TimeSpan.FromSeconds(1), s.Sampling.SampleInterval);
        Assert.Equal(TimeSpan.FromMilliseconds(500), s.Sampling.AskTimeout);
    }

    [Fact]
    public void A_sample_interval_below_100ms_is_refused()
    {
        var e = Assert.Throws<ConfigurationException>(() => From("continuity.supervision.sample-interval = 10ms\n"));
        Assert.Contains("'continuity.supervision.sample-interval'", e.Message);
        Assert.Contains("at least 100ms", e.Message);
    }
}
