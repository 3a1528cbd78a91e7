using System.Diagnostics;
using Moltar.Engine.Deploy;
using Xunit;

namespace Moltar.Engine.Tests.Deploy;

public class DebianSyntaxTests
{
    [Theory]
    [InlineData("moltar-test-app")]
    [InlineData("g++")]
    [InlineData("libc6")]
    [InlineData("0ad")]
    [InlineData("python3.11")]
    [InlineData("lib.foo+bar-2")]
    public void AcceptsDebianPackageNames(string name) => Assert.Null(DebianSyntax.PackageNameProblem(name));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("a", "fewer than two")]
    [InlineData("App", "starts with 'A'")]
    [InlineData("-rf", "starts with '-'")]
    [InlineData(".hidden", "starts with '.'")]
    [InlineData("x; rm -rf /", "contains ';'")]
    [InlineData("x y", "contains 'U+0020'")]
    [InlineData("$(reboot)", "starts with '$'")]
    [InlineData("app`id`", "contains '`'")]
    [InlineData("app'", "contains '''")]
    [InlineData("app\nreboot", "contains 'U+000A'")]
    [InlineData("app_web", "contains '_'")]
    [InlineData("app=1.0", "contains '='")]
    [InlineData("app:amd64", "contains ':'")]
    [InlineData("app/../etc", "contains '/'")]
    [InlineData("appé", "contains 'é'")]
    public void RefusesAnythingElseAndSaysWhy(string name, string reason)
    {
        var problem = DebianSyntax.PackageNameProblem(name);
        Assert.NotNull(problem);
        Assert.Contains(reason, problem);
    }

    [Fact]
    public void RefusesOverlongNames() =>
        Assert.Contains("longer than", DebianSyntax.PackageNameProblem(new string('a', DebianSyntax.MaxLength + 1)));

    [Theory]
    [InlineData("1.0.0")]
    [InlineData("1")]
    [InlineData("1.4.2-1")]
    [InlineData("1:2.3-4")]
    [InlineData("2:1.4.2~rc1-0ubuntu1")]
    [InlineData("1.0-1-2")]          // upstream 1.0-1, revision 2: hyphens in upstream need a revision after them
    [InlineData("1.0+dfsg-3+deb12u1")]
    [InlineData("0~20240101.git1a2b3c")]
    [InlineData("10:1.0")]
    public void AcceptsDebianVersions(string version) => Assert.Null(DebianSyntax.VersionProblem(version));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("v1.0", "does not start with a digit")]
    [InlineData("1.0; reboot", "contains ';'")]
    [InlineData("1.0 ", "contains 'U+0020'")]
    [InlineData("1.0\n", "contains 'U+000A'")]
    [InlineData("$(id)", "contains '$'")]
    [InlineData("1.0'", "contains '''")]
    [InlineData("1.0_1", "contains '_'")]
    [InlineData("1.0*", "contains '*'")]
    [InlineData(":1.0", "epoch '' (before ':') is not a number")]
    [InlineData("x:1.0", "epoch 'x'")]
    [InlineData("1:", "upstream version is empty")]
    [InlineData("1:2:3", "more than one ':'")]
    [InlineData("1.0-", "ends with '-'")]
    [InlineData("-1", "upstream version is empty")]
    [InlineData("1:a-1", "does not start with a digit")]
    public void RefusesBadVersionsAndSaysWhy(string version, string reason)
    {
        var problem = DebianSyntax.VersionProblem(version);
        Assert.NotNull(problem);
        Assert.Contains(reason, problem);
    }
}

public class DeployRequestTests
{
    [Fact]
    public void KeepsTheOrderAndDropsDuplicates()
    {
        var request = DeployRequest.Create(new[] { "app-web", "app-worker", "app-web" }, "1.4.2");
        Assert.Equal(new[] { "app-web", "app-worker" }, request.Packages);
        Assert.Equal(new[] { "app-web=1.4.2", "app-worker=1.4.2" }, request.InstallArguments);
        Assert.Equal("app-web=1.4.2, app-worker=1.4.2", request.Describe());
    }

    [Fact]
    public void AMaliciousPackageNameIsRefusedNamingItsSource()
    {
        var e = Assert.Throws<MoltarException>(() => DeployRequest.Create(new[] { "app", "x; rm -rf /" }, null, packageSource: "/repo/.moltar-packages"));
        Assert.Equal(DeployErrorIds.InvalidPackageName, e.ErrorId);
        Assert.Equal(FailureCategory.InvalidArgument, e.Category);
        Assert.Contains("'x; rm -rf /' from /repo/.moltar-packages", e.Message);
        Assert.Contains("contains ';'", e.Message);
        Assert.Contains("Nothing was deployed", e.Message);
    }

    [Fact]
    public void AMaliciousVersionIsRefused()
    {
        var e = Assert.Throws<MoltarException>(() => DeployRequest.Create(new[] { "app" }, "1.0' && reboot '"));
        Assert.Equal(DeployErrorIds.InvalidVersion, e.ErrorId);
        Assert.Contains("-Version '1.0' && reboot ''", e.Message);
    }

    [Fact]
    public void ControlCharactersAreNotEchoedIntoTheMessage()
    {
        var e = Assert.Throws<MoltarException>(() => DeployRequest.Create(new[] { "app\u001b[2J" }, null));
        Assert.DoesNotContain("\u001b", e.Message, StringComparison.Ordinal);
        Assert.Contains("'app?[2J'", e.Message);
    }

    [Fact]
    public void NoPackageIsAnError()
    {
        foreach (var packages in new[] { null, Array.Empty<string>() })
        {
            var e = Assert.Throws<MoltarException>(() => DeployRequest.Create(packages, null));
            Assert.Equal(DeployErrorIds.NoPackage, e.ErrorId);
            Assert.Contains(".moltar-packages", e.Message);
        }
    }
}

public class DeployPlanTests
{
    private const string Query = "dpkg-query -W -f='${Package}\\t${Version}\\t${Status}\\n' 'app-web' 'app-worker'";

    [Fact]
    public void APinnedDeployAsANormalUserRunsAptThroughSudoAndAllowsDowngrades()
    {
        var steps = DeployPlan.For(DeployRequest.Create(new[] { "app-web", "app-worker" }, "1.4.2"), "ubuntu");
        Assert.Equal(new[] { DeployStepKind.Previous, DeployStepKind.Update, DeployStepKind.Install, DeployStepKind.Verify }, steps.Select(s => s.Kind));
        Assert.Equal(new[]
        {
            Query,
            "sudo -n DEBIAN_FRONTEND=noninteractive apt-get update -q",
            "sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=60 --allow-downgrades 'app-web=1.4.2' 'app-worker=1.4.2'",
            Query,
        }, steps.Select(s => s.Command));
    }

    [Fact]
    public void AnUnpinnedDeployAsRootAsksAptForTheCandidatesAndUsesNoSudo()
    {
        var steps = DeployPlan.For(DeployRequest.Create(new[] { "app-web", "app-worker" }, null), "root");
        Assert.Equal(new[]
        {
            Query,
            "env DEBIAN_FRONTEND=noninteractive apt-get update -q",
            "env LC_ALL=C apt-cache policy 'app-web' 'app-worker'",
            "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=60 'app-web' 'app-worker'",
            Query,
        }, steps.Select(s => s.Command));
        Assert.DoesNotContain(steps, s => s.Command.Contains("sudo") || s.Command.Contains("--allow-downgrades"));
    }

    [Fact]
    public void CleanAddsAutoremoveAndCleanBeforeTheVerification()
    {
        var steps = DeployPlan.For(DeployRequest.Create(new[] { "app" }, null, clean: true), "deploy");
        Assert.Equal(new[] { DeployStepKind.Previous, DeployStepKind.Update, DeployStepKind.Policy, DeployStepKind.Install,
                             DeployStepKind.Autoremove, DeployStepKind.Clean, DeployStepKind.Verify }, steps.Select(s => s.Kind));
        Assert.Equal("sudo -n DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -q -o DPkg::Lock::Timeout=60", steps[4].Command);
        Assert.Equal("sudo -n DEBIAN_FRONTEND=noninteractive apt-get clean", steps[5].Command);
    }

    [Fact]
    public void OnlyTheExactUserRootSkipsSudo()
    {
        Assert.True(DeployPlan.IsRoot("root"));
        Assert.False(DeployPlan.IsRoot("Root"));
        Assert.False(DeployPlan.IsRoot("rooty"));
        Assert.False(DeployPlan.IsRoot(null));
    }

    [Theory]
    [InlineData("plain", "'plain'")]
    [InlineData("it's", "'it'\\''s'")]
    [InlineData("", "''")]
    public void QuotesWithSingleQuotes(string word, string quoted) => Assert.Equal(quoted, DeployPlan.Quote(word));

    [Fact]
    public void AQuotedWordReachesARealShellAsOneLiteralWord()
    {
        if (OperatingSystem.IsWindows()) return;
        var words = new[] { "x; rm -rf /", "$(id)", "`id`", "a'b\"c", "'; echo pwned; '", "*", "~root", "a\\nb", "line\nbreak", "$HOME", "!!", "--help" };
        foreach (var word in words)
        {
            var info = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
            info.ArgumentList.Add("-c");
            info.ArgumentList.Add("printf '%s|' " + DeployPlan.Quote(word) + " " + DeployPlan.Quote(word));
            using var shell = Process.Start(info)!;
            string output = shell.StandardOutput.ReadToEnd();
            shell.WaitForExit();
            Assert.Equal(0, shell.ExitCode);
            Assert.Equal(word + "|" + word + "|", output);
        }
    }
}
