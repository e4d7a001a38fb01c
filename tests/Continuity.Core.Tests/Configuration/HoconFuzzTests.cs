using System.Diagnostics;
using Continuity.Core.Configuration;
using Xunit;

namespace Continuity.Core.Tests.Configuration;

public class HoconFuzzTests
{
    // Characters that matter to the grammar, so mutations hit the interesting paths.
    private const string Alphabet = "{}[]=:,+\"$?#/\\\n \t.abc01-_\u00e9";

    [Fact]
    public void Random_mutations_of_a_valid_file_only_ever_raise_ConfigurationException()
    {
        var original = ContinuityConfigLoaderTests.LabConfig + "\na.b = ${?x}\nc = \"\"\"t\"\"\"\n";
        var random = new Random(20261127);
        var watch = Stopwatch.StartNew();
        var rejected = 0;
        for (var i = 0; i < 2000; i++)
        {
            var text = Mutate(original, random);
            // A hang shows up as this task not finishing, rather than as the whole run stalling.
            var task = Task.Run(() =>
            {
                try
                {
                    HoconSyntaxChecker.Check(text, "fuzz.hocon", Path.GetTempPath());
                    return true;
                }
                catch (ConfigurationException e)
                {
                    Assert.NotNull(e.Position);
                    return false;
                }
            });
            Assert.True(task.Wait(TimeSpan.FromSeconds(10)), $"checker hung on mutation {i}:\n{text}");
            if (!task.Result) rejected++;
        }
        Assert.InRange(rejected, 200, 2000);
        Assert.True(watch.Elapsed < TimeSpan.FromMinutes(1), $"took {watch.Elapsed}");
    }

    [Fact]
    public void Random_mutations_through_the_whole_loader_only_ever_raise_ConfigurationException()
    {
        // Akka's parser and getters run after the checker; anything they throw must arrive as ConfigurationException too.
        var random = new Random(4242);
        for (var i = 0; i < 2000; i++)
        {
            var text = Mutate(ContinuityConfigLoaderTests.LabConfig, random);
            var task = Task.Run(() =>
            {
                try
                {
                    var loaded = ContinuityConfigLoader.LoadFromString(text, "fuzz.hocon", Path.GetTempPath());
                    NodeSettings.From(loaded);
                    AppSettingsParser.Parse(loaded);
                }
                catch (ConfigurationException)
                {
                }
            });
            Assert.True(task.Wait(TimeSpan.FromSeconds(10)), $"loader hung on mutation {i}:\n{text}");
            if (task.Exception is { } e) Assert.Fail($"mutation {i} raised {e.InnerException}\n---\n{text}");
        }
    }

    private static string Mutate(string text, Random random)
    {
        var chars = text.ToList();
        var edits = 1 + random.Next(4);
        for (var e = 0; e < edits; e++)
        {
            var at = random.Next(chars.Count + 1);
            switch (random.Next(4))
            {
                case 0: chars.Insert(at, Alphabet[random.Next(Alphabet.Length)]); break;
                case 1: if (at < chars.Count) chars.RemoveAt(at); break;
                case 2: if (at < chars.Count) chars[at] = Alphabet[random.Next(Alphabet.Length)]; break;
                case 3:
                    // Duplicate a slice: repeats braces, quotes and whole settings.
                    var len = Math.Min(random.Next(1, 20), chars.Count - Math.Min(at, chars.Count));
                    chars.InsertRange(at, chars.GetRange(Math.Min(at, chars.Count), len));
                    break;
            }
        }
        return new string(chars.ToArray());
    }
}
