using Continuity.Core.Configuration;
using Xunit;

namespace Continuity.Core.Tests.Configuration;

public class HoconSyntaxCheckerTests
{
    private static ConfigurationException Fails(string text, string source = "node.hocon") =>
        Assert.Throws<ConfigurationException>(() => HoconSyntaxChecker.Check(text, source));

    [Fact]
    public void Missing_closing_brace_is_reported_with_file_line_and_column()
    {
        var e = Fails("continuity {\n  node {\n    name = n1\n  }\n");
        Assert.StartsWith("node.hocon:5:1: missing '}' to close the '{' opened at line 1, column 12", e.Message);
        Assert.Equal(new ConfigPosition("node.hocon", 5, 1), e.Position);
    }

    [Fact]
    public void Stray_bracket_after_a_key_names_the_key_and_suggests_the_fix()
    {
        var e = Fails("continuity.apps.kv {\n  vip ]\n}\n");
        Assert.Equal("node.hocon:2:7: expected '=' or '{' after key 'continuity.apps.kv.vip', found ']'; write 'vip = value' or 'vip { ... }'", e.Message);
        Assert.Equal("continuity.apps.kv.vip", e.Key);
    }

    [Fact]
    public void Unbalanced_closing_brace_is_reported()
    {
        var e = Fails("a = 1\n}\n");
        Assert.StartsWith("node.hocon:2:1: unexpected '}' with no matching '{'", e.Message);
    }

    [Fact]
    public void Unclosed_array_is_reported_with_where_it_opened()
    {
        var e = Fails("continuity.apps.kv {\n  ports = [\"tcp/7000\"\n}\n");
        Assert.Contains("node.hocon:3:1:", e.Message);
        Assert.Contains("'[' opened at line 2, column 11", e.Message);
        Assert.Contains("continuity.apps.kv.ports", e.Message);
    }

    [Fact]
    public void Unterminated_string_is_reported_where_it_starts()
    {
        var e = Fails("a {\n  b = \"oops\n}\n");
        Assert.StartsWith("node.hocon:2:7: unterminated string (while parsing key 'a.b')", e.Message);
    }

    [Fact]
    public void Unterminated_triple_quoted_string_is_reported()
    {
        var e = Fails("a = \"\"\"one\ntwo\n");
        Assert.StartsWith("node.hocon:1:5: unterminated triple-quoted string", e.Message);
    }

    [Fact]
    public void Value_missing_after_equals_names_the_key()
    {
        var e = Fails("continuity {\n  node.name =\n}\n");
        Assert.StartsWith("node.hocon:2:14: value missing after '=' for key 'continuity.node.name'", e.Message);
    }

    [Fact]
    public void Unquoted_address_with_colon_asks_for_quotes()
    {
        var e = Fails("continuity.management.bind = 127.0.0.1:8558\n");
        Assert.Contains("node.hocon:1:39:", e.Message);
        Assert.Contains("quote values", e.Message);
    }

    [Fact]
    public void Two_settings_on_one_line_without_a_comma_are_refused()
    {
        var e = Fails("a = 1 b = 2\n");
        Assert.StartsWith("node.hocon:1:9: unexpected '='", e.Message);
    }

    [Fact]
    public void Supported_syntax_is_accepted_and_positions_are_recorded()
    {
        var text = """
            # comment
            // another comment
            continuity {
              node.name = "n1"   # trailing comment
              node { state-dir: /var/lib/c, join-timeout = 10s }
              apps {
                kv {
                  command = ["/bin/sh", "-c", "exec true"]
                  ports = [
                    "tcp/7000",
                    "udp/7001",
                  ]
                  description = \"\"\"multi
            line\"\"\"
                }
              }
            }
            a.b = ${continuity.node.name}
            a.c = ${?NOT_SET}
            akka.cluster.roles += data
            "quoted.key" = 1
            """.Replace("\\\"", "\"");
        var r = HoconSyntaxChecker.Check(text, "n.hocon");
        Assert.Equal(new ConfigPosition("n.hocon", 4, 3), r.Keys["continuity.node.name"]);
        Assert.Equal(new ConfigPosition("n.hocon", 5, 33), r.Keys["continuity.node.join-timeout"]);
        Assert.Equal(new ConfigPosition("n.hocon", 9, 7), r.Keys["continuity.apps.kv.ports"]);
        Assert.True(r.Keys.ContainsKey("\"quoted.key\""));
        Assert.Equal(2, r.Substitutions.Count);
        Assert.True(r.Substitutions[1].Optional);
    }

    [Fact]
    public void Root_braces_are_accepted()
    {
        var r = HoconSyntaxChecker.Check("{\n  a = 1\n}\n", "x");
        Assert.True(r.Keys.ContainsKey("a"));
    }

    [Fact]
    public void Include_is_resolved_relative_to_the_including_file_and_positions_name_the_included_file()
    {
        using var dir = new TempDir();
        dir.Write("conf/base.hocon", "{ node.name = base }\n");
        var main = dir.Write("conf/main.hocon", "continuity {\n  include \"base.hocon\"\n}\n");
        var r = HoconSyntaxChecker.CheckFile(main);
        Assert.Equal(Path.Combine(Path.GetDirectoryName(main)!, "base.hocon"), r.Keys["continuity.node.name"].File);
        Assert.Equal(1, r.Keys["continuity.node.name"].Line);
        Assert.Contains("node.name = base", r.Text);
    }

    [Fact]
    public void Include_of_a_missing_file_names_it()
    {
        using var dir = new TempDir();
        var main = dir.Write("main.hocon", "a = 1\ninclude \"nope.hocon\"\n");
        var e = Assert.Throws<ConfigurationException>(() => HoconSyntaxChecker.CheckFile(main));
        Assert.Contains(":2:9: included file \"nope.hocon\" not found", e.Message);
        Assert.Contains(Path.Combine(dir.Path, "nope.hocon"), e.Message);
    }

    [Fact]
    public void Include_cycle_is_reported()
    {
        using var dir = new TempDir();
        dir.Write("a.hocon", "include \"b.hocon\"\n");
        dir.Write("b.hocon", "include \"a.hocon\"\n");
        var e = Assert.Throws<ConfigurationException>(() => HoconSyntaxChecker.CheckFile(Path.Combine(dir.Path, "a.hocon")));
        Assert.Contains("include cycle", e.Message);
    }

    [Fact]
    public void Error_in_an_included_file_is_reported_in_that_file()
    {
        using var dir = new TempDir();
        dir.Write("bad.hocon", "x {\n");
        var main = dir.Write("main.hocon", "include \"bad.hocon\"\n");
        var e = Assert.Throws<ConfigurationException>(() => HoconSyntaxChecker.CheckFile(main));
        Assert.Equal(Path.Combine(dir.Path, "bad.hocon"), e.Position!.File);
    }

    [Fact]
    public void Deep_nesting_is_refused_instead_of_overflowing_the_stack()
    {
        var e = Fails("a = " + new string('[', 10_000));
        Assert.Contains("nesting deeper than", e.Message);
    }

    [Fact]
    public void Reference_configuration_passes_the_checker()
    {
        using var stream = typeof(HoconSyntaxChecker).Assembly.GetManifestResourceStream(ContinuityConfigLoader.ReferenceResourceName)!;
        var r = HoconSyntaxChecker.Check(new StreamReader(stream).ReadToEnd(), "reference.conf");
        Assert.True(r.Keys.ContainsKey("continuity.app-defaults.queue-base"));
    }
}
