using System.Text.Json;
using System.Text.Json.Nodes;

namespace Continuity.Cmd;

/// <summary>What a command handler gets: options, output, a lazily-connected client, and its Ctrl-C token.</summary>
internal sealed class CommandContext(CmdSession session, GlobalOptions options, CommandSpec spec, CancellationToken cancel)
{
    private static readonly JsonSerializerOptions Pretty = new() { WriteIndented = true };

    public GlobalOptions Options { get; } = options;
    public CommandSpec Spec { get; } = spec;
    public CancellationToken Cancel { get; } = cancel;
    public TextWriter Out => session.Env.Out;
    public TextWriter Err => session.Env.Err;
    public CmdEnvironment Env => session.Env;

    /// <summary>Only resolved when a command needs the node, so `help` works without a token.</summary>
    public ManagementClient Client => session.ClientFor(Options);

    public UsageException Usage(string message) => new(message, Spec);

    public void WriteJson(NodeReply reply)
    {
        Out.WriteLine(reply.Body is null ? reply.Raw : reply.Body.ToJsonString(Pretty));
    }

}

/// <summary>State shared across the commands of one run (several in interactive mode).</summary>
internal sealed class CmdSession(CmdEnvironment env, GlobalOptions defaults) : IDisposable
{
    private readonly Dictionary<(string, string?, string?), ManagementClient> _clients = new();

    public CmdEnvironment Env { get; } = env;
    public GlobalOptions Defaults { get; } = defaults;

    public ManagementClient ClientFor(GlobalOptions options)
    {
        var key = (options.Node, options.TokenFile, options.Ca);
        if (_clients.TryGetValue(key, out var client)) return client;
        var trust = options.Ca is null ? null : ManagementClient.LoadTrust(options.Ca);
        var token = TokenSource.Resolve(options.TokenFile, Env);
        if (token.Token is null) throw new CmdException(ExitCodes.AuthRefused, token.Problem!);
        client = new ManagementClient(options.Node, token.Token, token.File!, Env.RequestTimeout, trust);
        _clients[key] = client;
        return client;
    }

    public void Dispose()
    {
        foreach (var c in _clients.Values) c.Dispose();
    }
}

internal static class CmdApp
{
    /// <summary>Entry point for both the real process and in-process tests; returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, CmdEnvironment env)
    {
        GlobalOptions options;
        List<string> rest;
        try
        {
            (options, rest) = GlobalOptions.Parse(args, GlobalOptions.Defaults(env));
        }
        catch (UsageException ex)
        {
            return ReportUsage(env.Err, ex);
        }

        using var session = new CmdSession(env, options);
        try
        {
            if (rest.Count == 0) return await InteractiveAsync(session);
            var (code, _) = await ExecuteAsync(session, options, rest);
            return code;
        }
        finally
        {
            await env.Out.FlushAsync();
            await env.Err.FlushAsync();
        }
    }

    /// <summary>Runs one command line; never throws for operator errors, it maps them to exit codes.</summary>
    internal static async Task<(int Code, CommandSpec? Spec)> ExecuteAsync(CmdSession session, GlobalOptions options, IReadOnlyList<string> words)
    {
        var env = session.Env;
        CommandSpec? spec = null;
        try
        {
            var match = CommandTable.Find(words);
            if (match is null)
            {
                if (words.Count >= 1 && CommandTable.Group(words[0]) is { Count: > 0 } group &&
                    (words.Count == 1 || words[1].StartsWith('-')))
                    throw new UsageException(
                        $"'{words[0]}' needs a subcommand: {string.Join(", ", group.Select(g => g.Words[1]))}");
                throw new UnknownCommandException(words);
            }
            spec = match.Value.Spec;
            var cancel = env.Interrupts.Begin();
            try
            {
                var ctx = new CommandContext(session, options, spec, cancel);
                return (await spec.Handler(ctx, match.Value.Args), spec);
            }
            finally
            {
                env.Interrupts.End();
            }
        }
        catch (UnknownCommandException ex)
        {
            env.Err.WriteLine($"error: {ex.Message}.");
            var closest = CommandTable.Closest(ex.Words);
            env.Err.WriteLine(closest is not null
                ? $"did you mean '{closest.Name}'? (usage: {closest.Usage})"
                : "run 'continuity-cmd help' to list the commands.");
            env.Err.WriteLine(HelpCommand.UsageLine);
            return (ExitCodes.BadUsage, spec);
        }
        catch (UsageException ex)
        {
            return (ReportUsage(env.Err, ex), spec);
        }
        catch (CmdException ex)
        {
            env.Err.WriteLine($"error: {ex.Message}");
            return (ex.ExitCode, spec);
        }
    }

    private static int ReportUsage(TextWriter err, UsageException ex)
    {
        err.WriteLine($"error: {ex.Message}");
        err.WriteLine(ex.Command is null ? HelpCommand.UsageLine : $"usage: continuity-cmd {ex.Command.Usage}");
        return ExitCodes.BadUsage;
    }

    /// <summary>
    /// A real terminal gets line editing and persistent history; a pipe gets plain ReadLine and no prompt,
    /// so `continuity-cmd &lt; script` output is just the commands' output. Piped runs exit with the first
    /// failing command's code so scripts can tell something went wrong; they still run every line.
    /// </summary>
    private static async Task<int> InteractiveAsync(CmdSession session)
    {
        var env = session.Env;
        var prompt = $"continuity@{session.Defaults.Node}> ";
        var editing = !env.InputRedirected && env.Keys is not null;
        var history = editing ? new LineHistory(env.HistoryFile) : null;
        var editor = editing ? new LineEditor(env.Keys!, env.Out, history!) : null;
        var firstFailure = ExitCodes.Ok;

        if (editing)
            env.Out.WriteLine($"continuity-cmd: talking to {session.Defaults.Node}. Type 'help' for commands, 'exit' to leave.");

        while (true)
        {
            var line = editor is not null ? editor.ReadLine(prompt) : await env.In.ReadLineAsync();
            if (line is null) break;
            line = line.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;

            if (history is not null)
            {
                history.Add(line);
                // Saved after every line: a session ended by closing the terminal still keeps its history.
                history.Save();
            }

            int code;
            CommandSpec? spec;
            try
            {
                var (options, rest) = GlobalOptions.Parse(LineTokenizer.Split(line), session.Defaults);
                if (rest.Count == 0) continue;
                (code, spec) = await ExecuteAsync(session, options, rest);
            }
            catch (UsageException ex)
            {
                (code, spec) = (ReportUsage(env.Err, ex), null);
            }
            await env.Out.FlushAsync();
            await env.Err.FlushAsync();

            if (spec?.EndsSession == true) break;
            if (code != ExitCodes.Ok && firstFailure == ExitCodes.Ok) firstFailure = code;
        }
        return editing ? ExitCodes.Ok : firstFailure;
    }
}
