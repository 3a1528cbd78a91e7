namespace Moltar.Sandbox.Ssm;

/// <summary>An error answered the way SSM's JSON 1.1 protocol answers it: {"__type": code, "message": ...} with an HTTP status.</summary>
public sealed class SsmError(int status, string code, string message) : Exception(message)
{
    public int Status { get; } = status;
    public string Code { get; } = code;

    public static SsmError Validation(string message) => new(400, "ValidationException", message);
    public static SsmError InvalidInstanceId(string message) => new(400, "InvalidInstanceId", message);
    public static SsmError InvalidCommandId() => new(400, "InvalidCommandId", "The command ID is not valid.");
    public static SsmError InvocationDoesNotExist() => new(400, "InvocationDoesNotExist",
        "The command id and instance id specified do not match any invocations.");
    public static SsmError InvalidDocument(string name) => new(400, "InvalidDocument", $"Document {name} does not exist in your account.");
    public static SsmError InvalidParameters(string message) => new(400, "InvalidParameters", message);
    public static SsmError InvalidTarget(string message) => new(400, "InvalidTarget", message);
    public static SsmError InvalidNextToken() => new(400, "InvalidNextToken", "The specified token is not valid.");
    public static SsmError InvalidFilterKey(string key) => new(400, "InvalidInstanceInformationFilterValue", $"The filter key {key} is not valid.");
    public static SsmError UnknownOperation(string target) => new(400, "UnknownOperationException", $"The operation '{target}' is not known.");
    public static SsmError Throttling() => new(400, "ThrottlingException", "Rate exceeded");
    public static SsmError MissingAuthenticationToken() => new(400, "MissingAuthenticationTokenException", "Missing Authentication Token");
    public static SsmError IncompleteSignature(string message) => new(400, "IncompleteSignatureException", message);
    public static SsmError InternalServerError() => new(500, "InternalServerError", "An internal error has occurred.");
}
