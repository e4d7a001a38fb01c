namespace Continuity.Cmd;

internal sealed record TokenResult(string? Token, string? File, string? Problem, IReadOnlyList<string> Tried);

internal static class TokenSource
{
    public static readonly IReadOnlyList<string> WellKnownFiles =
        ["/etc/continuity/token", "/var/lib/continuity-lab/token"];

    /// <summary>
    /// An explicitly named file (flag or env) is the only one tried: silently falling back to another
    /// cluster's token would authenticate against the wrong thing or hide a typo.
    /// </summary>
    public static TokenResult Resolve(string? explicitFile, CmdEnvironment env)
    {
        var named = explicitFile ?? NullIfEmpty(env.GetEnv("CONTINUITY_TOKEN_FILE"));
        var candidates = named is not null ? new[] { named } : env.DefaultTokenFiles.ToArray();
        var tried = new List<string>();
        foreach (var file in candidates)
        {
            tried.Add(file);
            if (!File.Exists(file)) continue;
            string token;
            try
            {
                token = File.ReadAllText(file).Trim();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return new TokenResult(null, file, $"cannot read token file {file}: {ex.Message}", tried);
            }
            if (token.Length == 0)
                return new TokenResult(null, file, $"token file {file} is empty", tried);
            return new TokenResult(token, file, null, tried);
        }
        return new TokenResult(null, null,
            $"no token file found (tried: {string.Join(", ", tried)}); pass --token-file FILE or set CONTINUITY_TOKEN_FILE",
            tried);
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}
