namespace Renci.SshNet
{
    /// <summary>Posh-SSH's view of SSH.NET, reduced to what the coexistence test touches. It connects to nothing.</summary>
    public class SshClient
    {
        public SshClient(string host, string username, string password)
        {
            Host = host;
            Username = username;
        }

        public string Host { get; }

        public string Username { get; }

        /// <summary>Says which SSH.NET answered: the stand-in, never Moltar's.</summary>
        public static string Identity => "Renci.SshNet stand-in 2020.0.1";
    }
}
