using Xunit;

namespace Continuity.Lab.Tests.Chaos;

public class ChaosSafetyTests
{
    [RootFact]
    public void Chaos_refuses_to_run_where_a_lab_already_exists_instead_of_taking_it_down()
    {
        // An instance nobody uses, and a state directory holding a lab.json: chaos must stop before its first 'up',
        // which would otherwise clean that lab away.
        var dir = Directory.CreateTempSubdirectory("ct-chaos-safety-").FullName;
        try
        {
            var labJson = Path.Combine(dir, "lab.json");
            File.WriteAllText(labJson, """{"stateDir": "x", "instance": 254, "hosts": []}""");
            var output = new StringWriter();
            var error = new StringWriter();
            var code = Program.Run(["--instance", "254", "--state-dir", dir, "chaos", "--runs", "1", "--seed", "1"], output, error);
            Assert.Equal(1, code);
            Assert.Contains("a lab already exists on instance 254", error.ToString());
            Assert.Contains("--instance 254 down", error.ToString());
            Assert.True(File.Exists(labJson));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
