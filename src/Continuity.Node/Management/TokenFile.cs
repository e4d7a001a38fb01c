using System.Security.Cryptography;
using System.Text;

namespace Continuity.Node.Management;

/// <summary>The bearer token of the management endpoint, kept in a root-only file.</summary>
public static class TokenFile
{
    /// <summary>Reads the token, creating the file with a fresh random token (mode 0600) if it does not exist.</summary>
    public static string ReadOrCreate(string path)
    {
        if (!File.Exists(path))
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
            Directory.CreateDirectory(dir);
            var token = Convert.ToHexString(RandomNumberGenerator.GetBytes(32)).ToLowerInvariant();
            // Created with 0600 from the start: a token briefly readable by others is a leaked token.
            using (var stream = new FileStream(path, new FileStreamOptions
                   {
                       Mode = FileMode.CreateNew, Access = FileAccess.Write,
                       UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                   }))
            {
                stream.Write(Encoding.ASCII.GetBytes(token + "\n"));
            }
            return token;
        }

        var text = File.ReadAllText(path).Trim();
        if (text.Length < 16)
            throw new InvalidOperationException(
                $"management token file {path} holds a token shorter than 16 characters: write a longer random token there (or delete the file to let the node create one)");
        return text;
    }

    /// <summary>Compares in constant time, so response timing does not reveal how much of a guess was right.</summary>
    public static bool Matches(string expected, string? presented)
    {
        if (presented is null) return false;
        var a = Encoding.UTF8.GetBytes(expected);
        var b = Encoding.UTF8.GetBytes(presented);
        return CryptographicOperations.FixedTimeEquals(a, b);
    }
}
